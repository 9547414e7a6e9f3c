"""A headless edge that speaks a scripted conversation: several recordings on one
Converse stream, each one after the previous one's answer has finished, so the server's
conversation history grows with the pipeline's own answers, as it does live.

Everything else is the headless edge's (edge/headless.py): pacing, trailing silence,
the speaker's playback reports and edge spans at real-time pace, the Ping barrier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from edge.connection import Connection
from edge.headless import EdgeError, HeadlessEdge, TurnReport
from parley import rpc


@dataclass(frozen=True)
class Utterance:
    """One recording to speak: int16 samples, (frames,) or (frames, channels)."""

    samples: np.ndarray
    rate: int
    frames: Sequence[tuple[float, bytes]] = ()  # (seconds into the recording, JPEG)

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclass
class Conversation:
    """What came back: per utterance spoken, the turns the server made of it (usually
    one); ``error`` if the stream broke or timed out (later utterances are missing)."""

    session_id: str = ""
    turns: list[list[TurnReport]] = field(default_factory=list)
    error: str = ""


class ScriptedEdge(HeadlessEdge):
    async def converse(
        self, utterances: Sequence[Utterance], *, answer_timeout_s: float = 120.0
    ) -> Conversation:
        """Speak ``utterances`` (all in one audio format) in order on one stream.

        The whole conversation gets the recordings' duration (when paced) plus
        ``answer_timeout_s`` per utterance; past that, or if the stream breaks, the
        error is reported in the result, with the turns of the utterances finished."""
        if not utterances:
            return Conversation()
        first = utterances[0]
        if any((u.rate, u.channels) != (first.rate, first.channels) for u in utterances):
            raise ValueError("the utterances of one conversation must share one audio format")
        spoken = Conversation()
        budget = len(utterances) * (answer_timeout_s + self.trailing_silence_s)
        if not self.fast:
            budget += sum(u.seconds for u in utterances)
        link = Connection(
            rpc.dial(self.config.server), self._hello(first.rate, first.channels), outbox=512
        )
        try:
            async with asyncio.timeout(budget), asyncio.TaskGroup() as group:
                group.create_task(self._read(link))
                group.create_task(self._script(link, utterances, spoken))
        except TimeoutError:
            spoken.error = f"no answer within {budget:.0f} s"
        except ExceptionGroup as failed:
            error = failed.exceptions[0]
            if not isinstance(error, EdgeError | grpc.aio.AioRpcError):
                raise error from None
            spoken.error = str(error)
        finally:
            await link.close()
        spoken.session_id = self.report.session_id
        return spoken

    async def _script(
        self, link: Connection, utterances: Sequence[Utterance], spoken: Conversation
    ) -> None:
        for utterance in utterances:
            before = len(self.report.turns)
            await self._speak(link, utterance.samples, utterance.rate, utterance.frames)
            await self._settle(link)
            if self._closed:
                raise EdgeError("the server ended the stream")
            spoken.turns.append(self.report.turns[before:])
        link.close_send()
