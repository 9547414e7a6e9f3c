"""The engine protocols and domain types of the stage kinds beyond STT, LLM and TTS.

- ``speech_llm``: the user's audio (+ history, images, context) in; answer text and,
  where the model offers it, answer audio out (an end-to-end voice model);
- ``analyse``: the turn's audio, text or image in; labels with scores out (speech
  emotion, sentiment);
- ``retrieve``: a query in; the nearest passages of an index out (RAG);
- ``caption``: an image in; a description out.

Like every engine (see workers/engines.py), these never import grpc or protos.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    """A chat message (LLM and speech LLM requests)."""

    role: str  # "system" | "user" | "assistant"
    content: str
    images: tuple[bytes, ...] = ()  # JPEG


# --------------------------------------------------------------------------- speech LLM


@dataclass(frozen=True)
class SpeechLlmRequest:
    """``messages``: system prompt and history; the last one is the user's turn (its
    content: context text, may be empty; its images: camera frames). The turn's audio
    comes separately, as PCM16LE mono chunks at ``sample_rate``."""

    messages: tuple[Message, ...]
    sample_rate: int = 16000
    temperature: float = 0.7
    max_tokens: int = 256
    audio_out: bool = False
    voice: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeechDelta:
    """A piece of the answer: text (with audio out, the transcript of that audio),
    audio (PCM16LE mono at ``sample_rate``), or both; the last one may carry the
    finish reason. ``heard`` is what the model heard the user say, if it tells."""

    text: str = ""
    pcm: bytes = b""
    sample_rate: int = 0
    finish_reason: str | None = None
    heard: str = ""


@runtime_checkable
class SpeechLlmEngine(Protocol):
    model: str

    def load(self) -> None: ...

    def run(
        self, request: SpeechLlmRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[SpeechDelta]:
        """Consume the turn's audio, then stream the answer."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- analyse


@dataclass(frozen=True)
class AnalyseRequest:
    """Exactly one of ``audio`` (PCM16LE mono at ``sample_rate``), ``text`` or
    ``image`` (JPEG) is set."""

    audio: bytes | None = None
    text: str | None = None
    image: bytes | None = None
    sample_rate: int = 16000
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def input(self) -> str:
        """ "audio", "text" or "image": which one is set."""
        if self.audio is not None:
            return "audio"
        return "text" if self.text is not None else "image"


@dataclass(frozen=True)
class Label:
    label: str
    score: float  # 0..1, higher is more likely


@runtime_checkable
class AnalyseEngine(Protocol):
    model: str

    def load(self) -> None: ...

    async def run(self, request: AnalyseRequest) -> list[Label]:
        """Labels with scores, best first. InvalidRequest for an input it cannot take."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- retrieve


@dataclass(frozen=True)
class RetrieveRequest:
    query: str
    top_k: int = 0  # 0: the engine's default
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the document, relative to the indexed folder
    chunk: int  # the chunk's position in its document
    score: float  # cosine similarity, higher is nearer


@runtime_checkable
class RetrieveEngine(Protocol):
    model: str

    def load(self) -> None: ...

    async def run(self, request: RetrieveRequest) -> list[Passage]:
        """The nearest passages, best first."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- caption


@dataclass(frozen=True)
class CaptionRequest:
    image: bytes  # JPEG
    prompt: str | None = None
    max_tokens: int = 96
    options: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class CaptionEngine(Protocol):
    model: str

    def load(self) -> None: ...

    async def run(self, request: CaptionRequest) -> str:
        """A description of the image."""
        ...

    def close(self) -> None: ...
