"""The speaker's jitter buffer, the audio ring buffer and the reconnect backoff."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from edge.backoff import Backoff
from edge.jitter import JitterBuffer
from edge.ring import AudioRing
from protos import edge_pb2


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


def read(buffer: JitterBuffer, n: int) -> tuple[np.ndarray, int, list]:
    out = np.full(n, -1, np.int16)
    written, marks = buffer.read(out)
    return out, written, marks


def test_a_turn_waits_for_the_prebuffer_then_plays_gaplessly_across_chunks() -> None:
    buffer = JitterBuffer(prebuffer=100)
    buffer.push("t1", ramp(1, 60))
    out, written, marks = read(buffer, 80)
    assert written == 0 and marks == [] and not out.any()  # below the prebuffer: silence
    buffer.push("t1", ramp(61, 60))
    out, written, marks = read(buffer, 80)
    assert marks == [("started", "t1", 0)]
    assert written == 80 and list(out) == list(range(1, 81))
    buffer.push("t1", ramp(121, 10))
    buffer.end("t1")
    out, written, marks = read(buffer, 80)
    assert list(out[:50]) == list(range(81, 131))  # no gap between chunks
    assert marks == [("finished", "t1", 50)]
    assert written == 50 and not out[50:].any()
    assert not buffer.busy


def test_turns_play_back_to_back_and_an_ended_turn_skips_the_prebuffer() -> None:
    buffer = JitterBuffer(prebuffer=1000)
    buffer.push("a", ramp(1, 30))
    buffer.end("a")
    buffer.push("b", ramp(100, 30))
    buffer.end("b")
    out, written, marks = read(buffer, 100)
    assert list(out[:60]) == [*range(1, 31), *range(100, 130)]
    assert marks == [
        ("started", "a", 0),
        ("finished", "a", 30),
        ("started", "b", 30),
        ("finished", "b", 60),
    ]
    assert written == 60


def test_an_underrun_inside_a_turn_plays_silence_and_resumes() -> None:
    buffer = JitterBuffer(prebuffer=10)
    buffer.push("t", ramp(1, 20))
    out, written, marks = read(buffer, 50)
    assert written == 20 and marks == [("started", "t", 0)] and not out[20:].any()
    assert buffer.busy  # the turn has not ended
    buffer.push("t", ramp(21, 5))
    buffer.end("t")
    out, written, marks = read(buffer, 50)
    assert list(out[:5]) == list(range(21, 26)) and marks == [("finished", "t", 5)]


def test_clear_drops_a_turn_now_and_ignores_its_late_chunks() -> None:
    buffer = JitterBuffer(prebuffer=0)
    buffer.push("t", ramp(1, 500))
    read(buffer, 100)
    assert buffer.clear("t") == ["t"]
    out, written, marks = read(buffer, 100)
    assert written == 0 and not out.any() and marks == []
    buffer.push("t", ramp(1, 50))  # still in flight when the stop came
    buffer.end("t")
    assert not buffer.busy
    assert buffer.clear("t") == []  # nothing left to interrupt


def test_clear_of_one_turn_keeps_the_next() -> None:
    buffer = JitterBuffer(prebuffer=0)
    buffer.push("old", ramp(1, 50))
    buffer.push("new", ramp(200, 50))
    assert buffer.clear("old") == ["old"]
    out, _, marks = read(buffer, 10)
    assert marks[0] == ("started", "new", 0) and out[0] == 200


def test_a_resumed_turn_plays_again_as_a_new_segment() -> None:
    # The server stopped the answer for speech with no words, then sends its rest again.
    buffer = JitterBuffer(prebuffer=0)
    buffer.push("t", ramp(1, 100))
    read(buffer, 40)
    buffer.clear("t")
    buffer.push("t", ramp(1, 50))  # in flight when the stop came: dropped
    buffer.resume("t")
    buffer.push("t", ramp(41, 60))  # the rest, from where it stopped
    buffer.end("t")
    out, written, marks = read(buffer, 100)
    assert written == 60 and list(out[:60]) == list(range(41, 101))
    assert marks == [("started", "t", 0), ("finished", "t", 60)]


def chunk(seq: int) -> edge_pb2.AudioChunk:
    return edge_pb2.AudioChunk(seq=seq, pcm=b"\0\0", capture_time=seq * 0.02)


async def test_ring_drops_the_oldest_when_full_and_counts() -> None:
    ring = AudioRing(capacity=3)
    results = [ring.append(chunk(i)) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert ring.dropped == 2
    assert [(await ring.get()).seq for _ in range(3)] == [2, 3, 4]
    assert ring.take() is None


async def test_ring_keeps_sent_chunks_until_acknowledged_and_resends_them_in_order() -> None:
    ring = AudioRing(capacity=10)
    for i in range(6):
        ring.append(chunk(i))
    assert [ring.take().seq for _ in range(4)] == [0, 1, 2, 3]  # type: ignore[union-attr]
    assert (ring.unsent, ring.in_flight, len(ring)) == (2, 4, 6)
    assert ring.acknowledge(2) == 2  # the server has taken 0 and 1
    assert ring.rewind() == 2  # the stream broke: 2 and 3 were never acknowledged
    assert [ring.take().seq for _ in range(4)] == [2, 3, 4, 5]  # type: ignore[union-attr]
    assert ring.take() is None
    # A new server says it took everything below 5 (on the stream that broke).
    ring.rewind()
    assert ring.acknowledge(5) == 3 and [c.seq for c in [ring.take()]] == [5]  # type: ignore[union-attr]
    assert (ring.acknowledged, ring.resent, ring.dropped) == (5, 6, 0)


def test_ring_bounds_chunks_in_flight_and_counts_what_it_forgets() -> None:
    ring = AudioRing(capacity=10, unacked_capacity=3)
    for i in range(5):
        ring.sent(chunk(i))
    assert ring.in_flight == 3 and ring.unconfirmed == 2
    ring.append(chunk(5))
    ring.rewind()  # 2, 3, 4 back in front of 5: the queue (10) has room
    assert [ring.take().seq for _ in range(4)] == [2, 3, 4, 5]  # type: ignore[union-attr]


def test_a_rewind_that_overfills_the_queue_drops_the_oldest() -> None:
    ring = AudioRing(capacity=3)
    for i in range(3):
        ring.sent(chunk(i))
    for i in range(3, 5):
        ring.append(chunk(i))
    ring.rewind()
    assert ring.dropped == 2 and [ring.take().seq for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]


async def test_ring_get_waits_for_a_chunk() -> None:
    ring = AudioRing(capacity=2)
    waiter = asyncio.create_task(ring.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    ring.append(chunk(7))
    assert (await asyncio.wait_for(waiter, 1)).seq == 7


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=0.25, cap=5.0, rng=random.Random(3))
    delays = [backoff.next() for _ in range(12)]
    ceilings = [min(5.0, 0.25 * 2**n) for n in range(12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 5.0
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered, not a fixed 5 s
    backoff.reset()
    assert backoff.next() <= 0.25


def test_backoff_spreads_edges_that_retry_together() -> None:
    first = [Backoff(rng=random.Random(seed)).next() for seed in range(20)]
    assert max(first) - min(first) > 0.05
    assert all(0.125 <= d <= 0.25 for d in first)


@pytest.mark.parametrize("capacity", [0, -1])
def test_ring_needs_room(capacity: int) -> None:
    with pytest.raises(ValueError):
        AudioRing(capacity)
