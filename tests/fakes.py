"""Fake engines for integration tests: real gRPC, controllable timing, and a record of
whether the call was cancelled (so barge-in can be seen reaching the worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from workers.engines import LlmRequest, Speech, SttRequest, TextDelta, Transcript, TtsRequest
from workers.errors import EngineUnavailable
from workers.kinds import AnalyseRequest, Label, Passage, RetrieveRequest


class FixedStt:
    """Transcribes any audio as ``text``."""

    model = "fixed"

    def __init__(self, text: str = "hello there") -> None:
        self.text = text
        self.calls = 0

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    def heard(self, call: int, seconds: float) -> str:
        """The transcript of call ``call`` (0, 1, ...), given ``seconds`` of audio."""
        return self.text

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        call, self.calls = self.calls, self.calls + 1
        seconds = sum([len(chunk) async for chunk in audio]) / 2 / request.sample_rate
        yield Transcript(self.heard(call, seconds), audio_seconds=seconds)


class ScriptedStt(FixedStt):
    """Transcribes the n-th call's audio as ``texts[n]`` (the last text after that)."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__(texts[-1])
        self.texts = texts

    def heard(self, call: int, seconds: float) -> str:
        return self.texts[min(call, len(self.texts) - 1)]


class LengthStt(FixedStt):
    """Transcribes any audio as its length ("3.20 seconds"): the transcript tells how
    much of the turn the call was given."""

    def heard(self, call: int, seconds: float) -> str:
        return f"{seconds:.2f} seconds"


class ScriptedLlm:
    """Yields ``text`` word by word with ``delay`` seconds between words."""

    model = "scripted"

    def __init__(self, text: str = "First sentence here. Second one follows.", delay: float = 0.0):
        self.text, self.delay = text, delay
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.requests: list[LlmRequest] = []

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        self.requests.append(request)
        self.started.set()
        try:
            for word in self.text.split(" "):
                yield TextDelta(word + " ")
                await asyncio.sleep(self.delay)
            yield TextDelta("", finish_reason="stop")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        except GeneratorExit:
            self.cancelled.set()
            raise


class ToneTts:
    """Speaks each text as ``seconds`` of a quiet tone per text, after ``delay``."""

    model = "tone"
    rate = 16000

    def __init__(self, seconds: float = 0.1, delay: float = 0.0) -> None:
        self.seconds, self.delay = seconds, delay
        self.texts: list[str] = []
        self.ended = asyncio.Event()  # the call is over, however it ended

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        index = 0
        try:
            async for sentence in text:
                self.texts.append(sentence)
                await asyncio.sleep(self.delay)
                pcm = b"\x00\x10" * int(self.rate * self.seconds)
                yield Speech(pcm, self.rate, index, sentence_end=True)
                index += 1
        finally:
            self.ended.set()


class FixedLabels:
    """An analyse engine that labels every input the same, after ``delay`` seconds;
    ``fail`` makes it raise. ``seen`` records the inputs (audio length, text)."""

    model = "fixed-labels"

    def __init__(
        self, labels: tuple[tuple[str, float], ...] = (("calm", 0.9), ("tense", 0.1)),
        delay: float = 0.0, fail: str = "",
    ) -> None:  # fmt: skip
        self.labels, self.delay, self.fail = labels, delay, fail
        self.seen: list[AnalyseRequest] = []
        self.started = asyncio.Event()

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: AnalyseRequest) -> list[Label]:
        self.seen.append(request)
        self.started.set()
        await asyncio.sleep(self.delay)
        if self.fail:
            raise EngineUnavailable(self.fail)
        return [Label(name, score) for name, score in self.labels]


class FixedPassages:
    """A retrieve engine returning the same passages for any query (recorded)."""

    model = "fixed-passages"

    def __init__(self, passages: tuple[str, ...] = ("The lamp switch is by the door.",)):
        self.passages = passages
        self.queries: list[str] = []

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: RetrieveRequest) -> list[Passage]:
        self.queries.append(request.query)
        return [Passage(text, "notes.md", i, 0.9 - i / 10) for i, text in enumerate(self.passages)]
