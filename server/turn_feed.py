"""A session's turn detector fed through the server's shared VAD scheduler.

Audio goes in without waiting for the VAD (:meth:`TurnFeed.feed` cuts windows and
queues them on the session's :class:`~server.vad_scheduler.ScoredStream`), so a
session reads its next message while its windows are scored with every other
session's. The probabilities come back in order to a task of the feed's own, which
steps the detector and hands each turn event to the session (``on_event``), then calls
``after_step`` (the session streams the open turn's audio ahead to the STT worker).

A session that falls behind (its windows wait for the scheduler) catches up by several
windows per round; past ``max_behind`` windows (2 s of audio) :meth:`feed` waits, so
memory stays bounded and gRPC's flow control slows the edge down. :meth:`caught_up`
waits until every window fed so far has been scored and its events handled: a Ping is
answered after it, so a Pong still means "all audio sent before the Ping is handled".
An error in the task (the VAD, or the session's handling of an event) is raised by the
next :meth:`feed`, :meth:`caught_up` or :meth:`finish`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy.typing as npt

from server.turns import TurnDetector, TurnEvent
from server.vad_scheduler import ScoredStream

MAX_BEHIND_WINDOWS = 64  # ~2 s of 32 ms windows


class TurnFeed:
    def __init__(
        self,
        detector: TurnDetector,
        stream: ScoredStream[Any],
        on_event: Callable[[TurnEvent], Awaitable[None]],
        after_step: Callable[[], None],
        *,
        max_behind: int = MAX_BEHIND_WINDOWS,
    ) -> None:
        self.detector, self.stream = detector, stream
        self._on_event, self._after_step = on_event, after_step
        self._max_behind = max_behind
        self._outstanding = 0  # windows submitted, not stepped yet
        self._progress = asyncio.Event()  # windows were stepped (or the task ended)
        self._task = asyncio.create_task(self._step_all(), name="turn-feed")

    async def feed(self, samples: npt.ArrayLike) -> None:
        """Cut ``samples`` (float32 mono at the detector's rate) into windows and queue
        them; waits only while more than ``max_behind`` windows are outstanding."""
        self._check()
        windows = self.detector.push(samples)
        if len(windows):
            self.stream.submit(windows)
            self._outstanding += len(windows)
        while self._outstanding > self._max_behind:
            await self._wait_progress()

    async def caught_up(self) -> None:
        """Wait until every window fed so far is scored and its events handled."""
        while self._outstanding:
            await self._wait_progress()
        self._check()

    async def finish(self, tail: npt.ArrayLike) -> list[TurnEvent]:
        """End of stream: feed ``tail`` and the last partial window, wait for them, and
        return the events that closing the stream adds (the open turn, if any)."""
        await self.feed(tail)
        windows = self.detector.tail_window()
        if len(windows):
            self.stream.submit(windows)
            self._outstanding += len(windows)
        await self.caught_up()
        return self.detector.finish()

    async def close(self) -> None:
        """Stop: the task is cancelled and the stream closed."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.stream.close()

    # ------------------------------------------------------------------ internals

    async def _step_all(self) -> None:
        try:
            while True:
                probs = await self.stream.scores()
                for event in self.detector.step(probs):
                    await self._on_event(event)
                self._after_step()
                self._outstanding -= len(probs)  # only now: their events are handled
                self._progress.set()
        finally:
            self._progress.set()  # wake a waiting feed() to see the error

    async def _wait_progress(self) -> None:
        self._check()
        self._progress.clear()
        await self._progress.wait()
        self._check()

    def _check(self) -> None:
        """Raise what ended the stepping task (it never ends on its own)."""
        if self._task.done():
            if not self._task.cancelled() and (exc := self._task.exception()) is not None:
                raise exc
            raise RuntimeError("the turn feed was closed")
