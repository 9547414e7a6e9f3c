"""WorkerPool.pick: round-robin, back-off for addresses marked down, and the fallback
when every address is down. Channels are lazy: nothing here touches the network."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.config import PoolConfig
from server import worker_clients
from server.worker_clients import BACKOFF_S, WorkerPool

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(worker_clients.time, "monotonic", clock)
    return clock


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(PoolConfig(name="p", stage="stt", engine="x", addresses=(A, B, C)))
    yield pool
    await pool.close()


def picks(pool: WorkerPool, n: int, exclude: tuple[str, ...] = ()) -> list[str]:
    return [pool.pick(exclude)[0] for _ in range(n)]


async def test_round_robin_across_addresses(pool: WorkerPool, clock: Clock) -> None:
    assert picks(pool, 7) == [A, B, C, A, B, C, A]


async def test_pick_returns_that_addresses_channel(pool: WorkerPool, clock: Clock) -> None:
    seen = {}
    for _ in range(3):
        address, channel = pool.pick()
        seen[address] = channel
    assert len({id(c) for c in seen.values()}) == 3
    address, channel = pool.pick()
    assert channel is seen[address]  # one channel per address, reused


async def test_address_marked_down_is_skipped_until_its_backoff_ends(
    pool: WorkerPool, clock: Clock
) -> None:
    pool.mark_down(B)
    assert picks(pool, 4) == [A, C, A, C]
    clock.now += BACKOFF_S + 0.01
    assert set(picks(pool, 3)) == {A, B, C}


async def test_mark_up_ends_the_backoff_at_once(pool: WorkerPool, clock: Clock) -> None:
    pool.mark_down(A)
    assert A not in picks(pool, 3)
    pool.mark_up(A)
    assert A in picks(pool, 3)


async def test_exclude_skips_addresses_already_tried(pool: WorkerPool, clock: Clock) -> None:
    assert A not in picks(pool, 4, exclude=(A,))
    assert picks(pool, 3, exclude=(A, B)) == [C, C, C]


async def test_all_down_falls_back_to_the_first_to_recover(pool: WorkerPool, clock: Clock) -> None:
    pool.mark_down(B)  # recovers at 102.0
    clock.now = 100.5
    pool.mark_down(C)  # 102.5
    clock.now = 101.0
    pool.mark_down(A)  # 103.0
    assert picks(pool, 3) == [B, B, B]


async def test_all_excluded_means_any_address_may_be_tried(pool: WorkerPool, clock: Clock) -> None:
    # Excluding everything must not leave the caller without a worker.
    assert set(picks(pool, 3, exclude=(A, B, C))) == {A, B, C}


async def test_excluded_and_down_falls_back_among_the_rest(pool: WorkerPool, clock: Clock) -> None:
    pool.mark_down(B)
    clock.now = 100.5
    pool.mark_down(C)
    assert picks(pool, 2, exclude=(A,)) == [B, B]  # B recovers first; A is excluded


async def test_single_address_pool(clock: Clock) -> None:
    pool = WorkerPool(PoolConfig(name="one", stage="tts", engine="x", addresses=(A,)))
    try:
        assert picks(pool, 2) == [A, A]
        pool.mark_down(A)
        assert picks(pool, 2) == [A, A]  # nowhere else to go
        assert pool.stage == "tts"
    finally:
        await pool.close()
