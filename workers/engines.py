"""Engine protocols, the domain types they speak, and the engine registry.

An engine is a class with ``load()``, ``run(...)`` (async iterators in, an async
iterator out; or a coroutine for the one-shot kinds) and ``close()``. Engines never
import grpc or protos: the servicers in workers/service.py translate between protobuf
and these types, and time the engine. Blocking inference runs in a thread (see
workers/threads.py). STT, LLM and TTS are here; the other kinds in workers/kinds.py.

Engines are found in :data:`REGISTRY` (Parley's own) and in the ``parley.engines``
entry-point group, so another package adds one without touching Parley: an entry point
named ``KIND.NAME`` whose value is ``module:Class`` (see docs/extending.md).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from parley.kinds import KINDS
from workers.errors import InvalidRequest, MissingExtra
from workers.kinds import (
    AnalyseEngine,
    CaptionEngine,
    Message,
    RetrieveEngine,
    SpeechLlmEngine,
)

log = logging.getLogger(__name__)

STAGES = KINDS
ENTRY_POINT_GROUP = "parley.engines"

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


Engine = (
    SttEngine
    | LlmEngine
    | TtsEngine
    | SpeechLlmEngine
    | AnalyseEngine
    | RetrieveEngine
    | CaptionEngine
)
__all__ = ["Message"]  # re-exported: the chat message of LLM and speech LLM requests

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
    "speech_llm": {
        "openai": ("workers.speech_llm.openai_engine:OpenAISpeechLlmEngine", "llm"),
    },
    "analyse": {
        "onnx_audio": ("workers.analyse.onnx_audio_engine:OnnxAudioClassifier", "analyse"),
    },
    "retrieve": {
        "index": ("workers.retrieve.index_engine:IndexRetriever", "rag"),
    },
    "caption": {
        "openai": ("workers.caption.openai_engine:OpenAICaptionEngine", "llm"),
        "llama_cpp": ("workers.caption.llama_cpp_engine:LlamaCppCaptionEngine", "llm"),
    },
}


def plugin_engines(stage: str) -> dict[str, metadata.EntryPoint]:
    """The ``parley.engines`` entry points for ``stage`` (named ``STAGE.NAME``)."""
    found = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        kind, dot, name = entry.name.partition(".")
        if not dot or kind not in STAGES:
            log.warning("ignoring entry point %r: its name must be KIND.NAME", entry.name)
        elif kind == stage:
            found[name] = entry
    return found


def engine_names(stage: str) -> list[str]:
    """Parley's own engines for ``stage`` and those installed packages add."""
    return sorted({*REGISTRY.get(stage, {}), *plugin_engines(stage)})


def _engine_class(stage: str, name: str) -> type:
    plugins = plugin_engines(stage)
    if name in REGISTRY[stage]:
        target, extra = REGISTRY[stage][name]
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise MissingExtra(exc.name or module_name, extra) from exc
        return getattr(module, class_name)  # type: ignore[no-any-return]
    if name in plugins:
        entry = plugins[name]
        try:
            loaded = entry.load()
        except ModuleNotFoundError as exc:
            raise InvalidRequest(
                f"{stage} engine {name!r} (entry point {entry.value}) cannot be imported: {exc}"
            ) from exc
        if not isinstance(loaded, type):
            raise InvalidRequest(f"entry point {entry.name} = {entry.value} is not a class")
        return loaded
    raise InvalidRequest(
        f"unknown {stage} engine {name!r}; expected one of {', '.join(engine_names(stage))}"
    )


def create_engine(stage: str, name: str, options: Mapping[str, Any]) -> Engine:
    """Instantiate (not load) the engine ``name`` for ``stage`` with its options.

    InvalidRequest for an unknown stage or engine or bad options; MissingExtra (naming
    the extra to install) when a built-in engine's dependency is missing."""
    if stage not in REGISTRY:
        raise InvalidRequest(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    cls = _engine_class(stage, name)
    try:
        engine: Engine = cls(**dict(options))
    except TypeError as exc:
        raise InvalidRequest(f"bad options for {stage} engine {name!r}: {exc}") from exc
    return engine
