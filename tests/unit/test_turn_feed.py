"""TurnFeed: audio in without waiting, turn events out in order, Pong semantics kept.

The VAD is a fake whose probability is the window's first sample (as in test_turns.py),
scored through a real BatchScheduler; it can be held (a gate) to play a slow VAD.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from parley.config import VadConfig
from server.turn_feed import TurnFeed
from server.turns import SpeechStarted, TurnDetector, TurnEnded, TurnEvent
from server.vad import VadStream
from server.vad_scheduler import BatchScheduler

W = 512


class ProbabilityIsAudio:
    sample_rate = 16000
    window = W

    def __init__(self) -> None:
        self.gate: threading.Event | None = None

    def new_stream(self) -> VadStream:
        return VadStream(context=np.zeros(64, dtype=np.float32))

    def probability(self, stream: VadStream, window: npt.ArrayLike) -> float:
        return float(np.asarray(window)[0])

    def probabilities(self, streams: Sequence[VadStream], windows: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10)
        return np.asarray(windows[:, 0], dtype=np.float32)


def track(*runs: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n * W, p, dtype=np.float32) for p, n in runs])


SPEECH = track((0, 10), (0.9, 20), (0, 40), (0.9, 12), (0, 30))  # two turns


@pytest.fixture
async def scheduler() -> AsyncIterator[BatchScheduler[ProbabilityIsAudio]]:
    sched = BatchScheduler(ProbabilityIsAudio(), interval_s=0.0)
    yield sched
    await sched.aclose()


class Session:
    """What a session does with the events: record them (optionally slowly)."""

    def __init__(self) -> None:
        self.events: list[TurnEvent] = []
        self.steps = 0
        self.hold: asyncio.Event | None = None
        self.fail = False

    async def on_event(self, event: TurnEvent) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise RuntimeError("the session choked on an event")
        self.events.append(event)

    def after_step(self) -> None:
        self.steps += 1


def feed_for(scheduler: BatchScheduler[ProbabilityIsAudio], session: Session) -> TurnFeed:
    detector = TurnDetector(VadConfig(), scheduler.model)
    return TurnFeed(detector, scheduler.open(), session.on_event, session.after_step, max_behind=16)


def reference() -> list[TurnEvent]:
    detector = TurnDetector(VadConfig(), ProbabilityIsAudio())
    return [e for i in range(0, len(SPEECH), 960) for e in detector.feed(SPEECH[i : i + 960])]


def same(got: list[TurnEvent], want: list[TurnEvent]) -> None:
    assert [type(e) for e in got] == [type(e) for e in want]
    for a, b in zip(got, want, strict=True):
        if isinstance(a, TurnEnded):
            assert isinstance(b, TurnEnded)
            assert (a.start_sample, a.end_sample, a.decided_sample) == (
                b.start_sample,
                b.end_sample,
                b.decided_sample,
            )
            np.testing.assert_array_equal(a.audio, b.audio)
        else:
            assert a == b


async def test_events_come_in_order_and_match_scoring_alone(
    scheduler: BatchScheduler[ProbabilityIsAudio],
) -> None:
    session = Session()
    feed = feed_for(scheduler, session)
    for i in range(0, len(SPEECH), 960):
        await feed.feed(SPEECH[i : i + 960])  # 60 ms chunks, none waits for the VAD
    await feed.caught_up()
    want = reference()
    assert [type(e) for e in want] == [SpeechStarted, TurnEnded] * 2
    same(session.events, want)
    assert session.steps >= 1
    await feed.close()


async def test_caught_up_waits_for_the_events_to_be_handled(
    scheduler: BatchScheduler[ProbabilityIsAudio],
) -> None:
    session = Session()
    session.hold = asyncio.Event()
    feed = feed_for(scheduler, session)
    await feed.feed(track((0.9, 12)))  # speech long enough to start a turn
    waiting = asyncio.create_task(feed.caught_up())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()  # scored, but the session has not handled the event yet
    session.hold.set()
    await waiting
    assert [type(e) for e in session.events] == [SpeechStarted]
    await feed.close()


async def test_feed_waits_when_too_far_behind(
    scheduler: BatchScheduler[ProbabilityIsAudio],
) -> None:
    scheduler.model.gate = threading.Event()  # the VAD is stuck
    session = Session()
    feed = feed_for(scheduler, session)
    await feed.feed(np.zeros(16 * W, np.float32))  # 16 windows behind: allowed
    blocked = asyncio.create_task(feed.feed(np.zeros(W, np.float32)))  # the 17th
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    scheduler.model.gate.set()
    await blocked
    await feed.caught_up()
    await feed.close()


async def test_an_error_in_handling_an_event_reaches_the_next_feed(
    scheduler: BatchScheduler[ProbabilityIsAudio],
) -> None:
    session = Session()
    session.fail = True
    feed = feed_for(scheduler, session)
    await feed.feed(track((0.9, 12)))
    with pytest.raises(RuntimeError, match="choked"):
        await feed.caught_up()
    with pytest.raises(RuntimeError, match="choked"):
        await feed.feed(np.zeros(W, np.float32))
    await feed.close()


async def test_finish_closes_the_open_turn(
    scheduler: BatchScheduler[ProbabilityIsAudio],
) -> None:
    session = Session()
    feed = feed_for(scheduler, session)
    await feed.feed(track((0, 5), (0.9, 20)))
    closing = await feed.finish(np.full(100, 0.9, np.float32))  # still speaking at the end
    assert [type(e) for e in session.events] == [SpeechStarted]
    (ended,) = closing
    assert isinstance(ended, TurnEnded) and ended.end_sample == 25 * W + 100
    await feed.close()
    with pytest.raises(RuntimeError, match="closed"):
        await feed.feed(np.zeros(W, np.float32))
