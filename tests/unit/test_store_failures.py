"""Store failures in words an operator can act on, and retries that stop."""

from __future__ import annotations

import errno
import time

import peewee
import pytest

from server.store_failures import (
    DISK_FULL,
    ERROR,
    LOCKED,
    READ_ONLY,
    StoreFailure,
    classify,
    retrying,
)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (peewee.OperationalError("database is locked"), LOCKED),
        (peewee.OperationalError("database or disk is full"), DISK_FULL),
        (peewee.OperationalError("attempt to write a readonly database"), READ_ONLY),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.wav"), DISK_FULL),
        (OSError(errno.EROFS, "Read-only file system"), READ_ONLY),
        (peewee.IntegrityError("UNIQUE constraint failed"), ERROR),
        (LookupError("turn t has no row"), ERROR),
    ],
)
def test_failures_are_classified(exc: Exception, reason: str) -> None:
    failure = classify("begin turn t", exc)
    assert failure.reason == reason
    assert failure.transient == (reason == LOCKED)
    assert "begin turn t" in str(failure)


async def test_a_locked_database_is_retried_until_it_works() -> None:
    calls = []

    async def attempt() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise peewee.OperationalError("database is locked")
        return "stored"

    assert await retrying("begin turn", attempt, retry_s=5.0, first_delay_s=0.01) == "stored"
    assert len(calls) == 3


async def test_retries_stop_at_the_bound_and_say_how_many_were_made(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def attempt() -> None:
        raise peewee.OperationalError("database is locked")

    started = time.monotonic()
    with pytest.raises(StoreFailure) as failed:
        await retrying("finish turn", attempt, retry_s=0.3, first_delay_s=0.05)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert failed.value.reason == LOCKED and failed.value.attempts > 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying for up to" in m for m in messages)
    assert any("not stored" in m and "database locked" in m for m in messages)


async def test_a_full_disk_is_not_retried() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StoreFailure) as failed:
        await retrying("begin turn", attempt, retry_s=10.0)
    assert calls == 1 and failed.value.reason == DISK_FULL
