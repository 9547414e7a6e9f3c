"""The batch scheduler with a fake model whose score depends on each stream's history.

The fake's probability for a window is ``window[0] + 0.001 * calls_so_far_on_this_stream``
and it records every call's streams, so a test sees the order each stream's windows went
through the model in and which streams shared a call. The real Silero VAD is exercised in
tests/integration/test_vad_batched.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from server.vad_scheduler import BatchScheduler, StreamClosed

W = 4


@dataclass
class Counter:
    name: str
    scored: int = 0


class HistoryModel:
    """Probability = window[0] + 0.001 * windows this stream scored before."""

    window = W

    def __init__(self) -> None:
        self.calls: list[list[str]] = []  # the streams of each call, in order
        self.threads: set[int] = set()
        self.gate: threading.Event | None = None  # set: calls wait for it
        self.entered = threading.Event()
        self.fail_next = False
        self.opened = 0

    def new_stream(self) -> Counter:
        self.opened += 1
        return Counter(f"s{self.opened}")

    def probabilities(self, streams: Sequence[Counter], windows: np.ndarray) -> np.ndarray:
        self.threads.add(threading.get_ident())
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        assert windows.shape == (len(streams), W)
        self.calls.append([s.name for s in streams])
        out = np.empty(len(streams), dtype=np.float32)
        for i, stream in enumerate(streams):
            out[i] = windows[i, 0] + 0.001 * stream.scored
            stream.scored += 1
        return out


def windows(*firsts: float) -> np.ndarray:
    return np.array([[v] * W for v in firsts], dtype=np.float32)


@pytest.fixture
async def scheduler() -> AsyncIterator[BatchScheduler[HistoryModel]]:
    sched = BatchScheduler(HistoryModel(), interval_s=0.0)
    yield sched
    await sched.aclose()


async def test_a_streams_windows_come_back_in_order(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    stream = scheduler.open()
    probs = await stream.score(windows(0.1, 0.2, 0.3))
    np.testing.assert_allclose(probs, [0.1, 0.201, 0.302], rtol=1e-6)
    probs = await stream.score(windows(0.5))
    np.testing.assert_allclose(probs, [0.503], rtol=1e-6)
    # one window per call: the recurrent state needs window i before window i+1
    assert scheduler.model.calls == [["s1"], ["s1"], ["s1"], ["s1"]]


async def test_ready_streams_share_calls_and_keep_their_own_state(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    a, b, c = scheduler.open(), scheduler.open(), scheduler.open()
    await a.score(windows(0.0))  # a is one window ahead of the others
    results = await asyncio.gather(
        a.score(windows(0.1, 0.1, 0.1)), b.score(windows(0.2)), c.score(windows(0.3, 0.3))
    )
    np.testing.assert_allclose(results[0], [0.101, 0.102, 0.103], rtol=1e-6)
    np.testing.assert_allclose(results[1], [0.2], rtol=1e-6)
    np.testing.assert_allclose(results[2], [0.3, 0.301], rtol=1e-6)
    # submitted together: one round, the r-th windows of every stream in one call
    assert scheduler.model.calls[1:] == [["s1", "s2", "s3"], ["s1", "s3"], ["s1"]]
    assert scheduler.stats.windows == 7 and scheduler.stats.largest_call == 3


async def test_windows_arriving_during_a_batch_gather_for_the_next(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    model = scheduler.model
    model.gate = threading.Event()
    a, b, c = scheduler.open(), scheduler.open(), scheduler.open()
    first = asyncio.create_task(a.score(windows(0.1)))
    await asyncio.to_thread(model.entered.wait, 10)  # a's batch is on the thread
    later = [asyncio.create_task(s.score(windows(0.2))) for s in (b, c)]
    await asyncio.sleep(0)
    assert scheduler.waiting == 2
    model.gate.set()
    await asyncio.gather(first, *later)
    assert model.calls == [["s1"], ["s2", "s3"]]


async def test_scoring_runs_off_the_event_loop(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    model = scheduler.model
    model.gate = threading.Event()
    stream = scheduler.open()
    scoring = asyncio.create_task(stream.score(windows(0.1)))
    await asyncio.to_thread(model.entered.wait, 10)
    # The model is blocked inside a call; the loop still runs other work.
    ticks = 0
    for _ in range(100):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 100 and not scoring.done()
    model.gate.set()
    await scoring
    assert threading.get_ident() not in model.threads and len(model.threads) == 1


async def test_a_stream_closed_mid_batch_is_skipped_and_others_go_on(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    model = scheduler.model
    model.gate = threading.Event()
    a, b = scheduler.open(), scheduler.open()
    pending = [asyncio.create_task(s.score(windows(0.1, 0.2))) for s in (a, b)]
    await asyncio.to_thread(model.entered.wait, 10)
    a.close()
    model.gate.set()
    with pytest.raises(StreamClosed):
        await pending[0]
    np.testing.assert_allclose(await pending[1], [0.1, 0.201], rtol=1e-6)
    with pytest.raises(StreamClosed):
        await a.score(windows(0.3))
    np.testing.assert_allclose(await b.score(windows(0.3)), [0.302], rtol=1e-6)


async def test_cancelling_a_score_closes_only_that_stream(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    model = scheduler.model
    model.gate = threading.Event()
    a, b = scheduler.open(), scheduler.open()
    blocker = asyncio.create_task(b.score(windows(0.5)))
    await asyncio.to_thread(model.entered.wait, 10)
    waiting = asyncio.create_task(a.score(windows(0.1)))  # waits for the next round
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert a.closed and scheduler.waiting == 0
    model.gate.set()
    await blocker
    assert model.calls == [["s2"]]  # a's window never reached the model
    with pytest.raises(StreamClosed):
        await a.score(windows(0.1))


async def test_a_model_error_ends_the_streams_of_that_round_only(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    scheduler.model.fail_next = True
    a, b = scheduler.open(), scheduler.open()
    results = await asyncio.gather(
        a.score(windows(0.1)), b.score(windows(0.2)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert a.closed and b.closed  # their state may be half advanced
    with pytest.raises(StreamClosed):
        a.submit(windows(0.3))
    c = scheduler.open()  # the scheduler goes on
    np.testing.assert_allclose(await c.score(windows(0.3)), [0.3], rtol=1e-6)


async def test_windows_submitted_without_waiting_come_back_in_order(
    scheduler: BatchScheduler[HistoryModel],
) -> None:
    model = scheduler.model
    model.gate = threading.Event()
    stream = scheduler.open()
    stream.submit(windows(0.1, 0.1))
    await asyncio.to_thread(model.entered.wait, 10)  # the first round is on the thread
    stream.submit(windows(0.2))  # while it runs: queued for the next round
    stream.submit(windows(0.3, 0.3, 0.3))
    assert stream.pending == 6
    model.gate.set()
    got: list[float] = []
    while len(got) < 6:
        got += (await stream.scores()).tolist()
    np.testing.assert_allclose(got, [0.1, 0.101, 0.202, 0.303, 0.304, 0.305], rtol=1e-6)
    assert stream.pending == 0
    assert scheduler.stats.rounds == 2  # 2 windows, then the 4 that came meanwhile


async def test_bad_input_fails_only_its_caller(scheduler: BatchScheduler[HistoryModel]) -> None:
    stream = scheduler.open()
    with pytest.raises(ValueError, match=r"shape \(k, 4\)"):
        await stream.score(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError):
        await stream.score(np.zeros(4, np.float32))
    assert len(await stream.score(np.zeros((0, W), np.float32))) == 0
    assert scheduler.model.calls == []
    np.testing.assert_allclose(await stream.score(windows(0.4)), [0.4], rtol=1e-6)


async def test_one_score_at_a_time_per_stream(scheduler: BatchScheduler[HistoryModel]) -> None:
    scheduler.model.gate = threading.Event()
    stream = scheduler.open()
    first = asyncio.create_task(stream.score(windows(0.1)))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="still in flight"):
        await stream.score(windows(0.2))
    scheduler.model.gate.set()
    np.testing.assert_allclose(await first, [0.1], rtol=1e-6)


async def test_closing_the_scheduler_ends_waiting_calls() -> None:
    model = HistoryModel()
    model.gate = threading.Event()
    sched = BatchScheduler(model, interval_s=0.0)
    a, b = sched.open(), sched.open()
    running = asyncio.create_task(a.score(windows(0.1)))
    await asyncio.to_thread(model.entered.wait, 10)
    waiting = asyncio.create_task(b.score(windows(0.2)))
    await asyncio.sleep(0)
    closing = asyncio.create_task(sched.aclose())
    await asyncio.sleep(0)
    model.gate.set()  # the running batch finishes on its thread
    await closing
    for task in (running, waiting):
        with pytest.raises(StreamClosed):
            await task
    with pytest.raises(StreamClosed):
        sched.open()


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        BatchScheduler(HistoryModel(), interval_s=-1)
    with pytest.raises(ValueError):
        BatchScheduler(HistoryModel(), max_batch=0)
    with pytest.raises(ValueError):
        BatchScheduler(HistoryModel(), max_depth=0)
    # a maximum below the interval is no stretching, not an error
    assert BatchScheduler(HistoryModel(), interval_s=0.01, max_interval_s=0.005).interval() == 0.01
    with pytest.raises(ValueError):
        BatchScheduler(HistoryModel(), gather=0)


async def test_the_interval_stretches_with_the_arrival_rate_within_its_bounds() -> None:
    """Rounds gather ``gather`` windows at the recent arrival rate: a few windows keep
    the short interval, many stretch it, never past max_interval_s."""
    sched = BatchScheduler(HistoryModel(), interval_s=0.002, max_interval_s=0.03, gather=8)
    try:
        assert sched.interval() == 0.002  # nothing arrived yet
        stream = sched.open()
        for _ in range(5):  # one window per round, ~ every 10 ms: 100 windows/s
            await stream.score(windows(0.1))
            await asyncio.sleep(0.01)
        assert sched.interval() == pytest.approx(0.03)  # 8 / ~100 per s, capped at 30 ms
        busy = [sched.open() for _ in range(40)]
        for _ in range(12):  # 40 windows every ~10 ms: 4000 per s -> 8 / 4000 = 2 ms
            await asyncio.gather(*(s.score(windows(0.1)) for s in busy))
            await asyncio.sleep(0.01)
        assert sched.interval() < 0.02  # ~2 ms when the machine keeps up
    finally:
        await sched.aclose()


async def test_a_large_round_takes_one_window_per_stream_unless_it_is_behind() -> None:
    sched = BatchScheduler(HistoryModel(), interval_s=0.0, gather=4)
    try:
        a, b, c, d = (sched.open() for _ in range(4))
        results = await asyncio.gather(
            a.score(windows(0.1, 0.1)),  # two queued: not behind, one per round
            b.score(windows(0.2)),
            c.score(windows(0.3, 0.3, 0.3, 0.3)),  # four: behind, catches up at once
            d.score(windows(0.4)),
        )
        np.testing.assert_allclose(results[0], [0.1, 0.101], rtol=1e-6)
        np.testing.assert_allclose(results[2], [0.3, 0.301, 0.302, 0.303], rtol=1e-6)
        calls = sched.model.calls
        assert calls[0] == ["s1", "s2", "s3", "s4"]  # round 1: a and c are both in it
        assert calls[1:4] == [["s3"], ["s3"], ["s3"]]  # c goes on; a waits for round 2
        assert calls[4:] == [["s1"]]
    finally:
        await sched.aclose()


async def test_more_ready_streams_than_max_batch_are_split() -> None:
    sched = BatchScheduler(HistoryModel(), interval_s=0.0, max_batch=2)
    try:
        streams = [sched.open() for _ in range(5)]
        results = await asyncio.gather(*(s.score(windows(0.1 * i)) for i, s in enumerate(streams)))
        np.testing.assert_allclose(np.concatenate(results), [0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)
        assert [len(c) for c in sched.model.calls] == [2, 2, 1]
    finally:
        await sched.aclose()


async def test_a_long_job_is_spread_over_rounds_and_others_do_not_wait_for_it() -> None:
    sched = BatchScheduler(HistoryModel(), interval_s=0.0, max_depth=8)
    try:
        a, b = sched.open(), sched.open()
        long_job = asyncio.create_task(a.score(windows(*[0.5] * 20)))
        short_job = asyncio.create_task(b.score(windows(0.1)))
        done, _ = await asyncio.wait({long_job, short_job}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {short_job}  # answered after the first round, not after all 20
        probs = await long_job
        np.testing.assert_allclose(probs, 0.5 + 0.001 * np.arange(20), rtol=1e-6)
        assert [len(c) for c in sched.model.calls] == [2] + [1] * 19
        assert sched.stats.rounds == 3 and sched.stats.windows == 21
    finally:
        await sched.aclose()
