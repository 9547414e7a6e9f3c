"""Engine protocols, the domain types they speak, and the engine registry.

An engine is a class with ``load()``, ``run(...)`` (async iterators in, an async
iterator out) and ``close()``. Engines never import grpc or protos: the servicers in
workers/service.py translate between protobuf and these types, and time the engine.
Blocking inference runs in a thread (see workers/threads.py).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from workers.errors import InvalidRequest, MissingExtra

STAGES = ("stt", "llm", "tts")

# --------------------------------------------------------------------------- STT


@dataclass(frozen=True)
class SttRequest:
    sample_rate: int = 16000
    language: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    final: bool = True
    language: str = ""
    audio_seconds: float = 0.0


@runtime_checkable
class SttEngine(Protocol):
    model: str

    def load(self) -> None: ...

    def run(self, request: SttRequest, audio: AsyncIterator[bytes]) -> AsyncIterator[Transcript]:
        """Consume PCM16LE mono chunks at ``request.sample_rate``; yield transcripts,
        the last one with ``final=True``."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- LLM


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class LlmRequest:
    messages: tuple[Message, ...]
    temperature: float = 0.7
    max_tokens: int = 256
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    text: str
    finish_reason: str | None = None  # set on the last delta when known


@runtime_checkable
class LlmEngine(Protocol):
    model: str

    def load(self) -> None: ...

    def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        """Yield the answer as text deltas while it is generated."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- TTS


@dataclass(frozen=True)
class TtsRequest:
    voice: str | None = None
    speed: float | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Speech:
    pcm: bytes  # PCM16LE mono
    sample_rate: int
    sentence: int  # index of the input text this audio speaks
    sentence_end: bool = False


@runtime_checkable
class TtsEngine(Protocol):
    model: str

    def load(self) -> None: ...

    def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        """Speak each text from ``text`` in order as it arrives; yield audio as soon as
        it exists, marking the last chunk of each text with ``sentence_end``."""
        ...

    def close(self) -> None: ...


Engine = SttEngine | LlmEngine | TtsEngine

# --------------------------------------------------------------------------- registry

# stage -> engine name -> ("module:Class", extra that provides its dependencies)
REGISTRY: dict[str, dict[str, tuple[str, str]]] = {
    "stt": {
        "faster_whisper": ("workers.stt.faster_whisper_engine:FasterWhisperEngine", "stt"),
        "openai": ("workers.stt.openai_engine:OpenAISttEngine", "stt"),
        "instant": ("workers.instant:InstantSttEngine", "server"),
    },
    "llm": {
        "llama_cpp": ("workers.llm.llama_cpp_engine:LlamaCppEngine", "llm"),
        "openai": ("workers.llm.openai_engine:OpenAILlmEngine", "llm"),
        "instant": ("workers.instant:InstantLlmEngine", "server"),
    },
    "tts": {
        "piper": ("workers.tts.piper_engine:PiperEngine", "tts"),
        "openai": ("workers.tts.openai_engine:OpenAITtsEngine", "tts"),
        "instant": ("workers.instant:InstantTtsEngine", "server"),
    },
}


def engine_names(stage: str) -> list[str]:
    return sorted(REGISTRY[stage])


def create_engine(stage: str, name: str, options: Mapping[str, Any]) -> Engine:
    """Instantiate (not load) the engine ``name`` for ``stage`` with its options."""
    if stage not in REGISTRY:
        raise InvalidRequest(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    try:
        target, extra = REGISTRY[stage][name]
    except KeyError:
        raise InvalidRequest(
            f"unknown {stage} engine {name!r}; expected one of {', '.join(engine_names(stage))}"
        ) from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MissingExtra(exc.name or module_name, extra) from exc
    cls = getattr(module, class_name)
    try:
        engine: Engine = cls(**dict(options))
    except TypeError as exc:
        raise InvalidRequest(f"bad options for {stage} engine {name!r}: {exc}") from exc
    return engine
