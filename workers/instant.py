"""Engines that answer at once, for `parley bench turn --engines instant` only.

They do no inference, so a turn through them measures Parley's own overhead:
transfers, queueing, serialisation and the pipeline's bookkeeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from workers.engines import LlmRequest, Speech, SttRequest, TextDelta, Transcript, TtsRequest

_ANSWER = "This is an instant answer. It exists to measure overhead."


class InstantSttEngine:
    model = "instant"

    def load(self) -> None:
        pass

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        size = 0
        async for chunk in audio:
            size += len(chunk)
        yield Transcript("what does instant mean", audio_seconds=size / 2 / request.sample_rate)

    def close(self) -> None:
        pass


class InstantLlmEngine:
    model = "instant"

    def load(self) -> None:
        pass

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        for word in _ANSWER.split(" "):
            yield TextDelta(word + " ")
        yield TextDelta("", finish_reason="stop")

    def close(self) -> None:
        pass


class InstantTtsEngine:
    """Speaks every text as 100 ms of silence at 16 kHz."""

    model = "instant"
    sample_rate = 16000

    def load(self) -> None:
        pass

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        index = 0
        async for _ in text:
            yield Speech(bytes(2 * self.sample_rate // 10), self.sample_rate, index, True)
            index += 1

    def close(self) -> None:
        pass
