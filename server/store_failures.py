"""Why a store write failed, in words an operator can act on, and bounded retries.

Every store method's failure becomes a :class:`StoreFailure` with a ``reason``:

- ``database locked``: another process holds SQLite's write lock (or a PostgreSQL
  lock timed out). Transient: retried for ``store.write_retry_s`` seconds;
- ``disk full``: ``ENOSPC``/``EDQUOT`` from a media file, or SQLite's "database or disk
  is full";
- ``read-only``: the data directory or database cannot be written (``EROFS``,
  ``EACCES``, "attempt to write a readonly database");
- ``error``: anything else (a bug, a constraint), with the exception's text.

Each failure is logged once with the operation, the reason and what happens next; the
caller decides what the edge is told (see ``Session._store_turn``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import peewee

from parley.errors import ParleyError

log = logging.getLogger("server.store")

T = TypeVar("T")

LOCKED = "database locked"
DISK_FULL = "disk full"
READ_ONLY = "read-only"
ERROR = "error"

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


class StoreFailure(ParleyError):
    """A store write that did not happen. ``reason``: see the module docstring."""

    def __init__(self, operation: str, reason: str, detail: str, *, attempts: int = 1) -> None:
        super().__init__(f"{operation}: {reason} ({detail})")
        self.operation, self.reason, self.detail, self.attempts = (
            operation,
            reason,
            detail,
            attempts,
        )

    @property
    def transient(self) -> bool:
        return self.reason == LOCKED


def classify(operation: str, exc: BaseException) -> StoreFailure:
    if isinstance(exc, StoreFailure):
        return exc
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return StoreFailure(operation, DISK_FULL, text)
    if isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS:
        return StoreFailure(operation, READ_ONLY, text)
    if isinstance(exc, peewee.OperationalError | peewee.InterfaceError):
        if "locked" in lowered or "busy" in lowered or "lock timeout" in lowered:
            return StoreFailure(operation, LOCKED, text)
        if "disk is full" in lowered or "no space" in lowered:
            return StoreFailure(operation, DISK_FULL, text)
        if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
            return StoreFailure(operation, READ_ONLY, text)
    return StoreFailure(operation, ERROR, f"{type(exc).__name__}: {text}")


async def retrying(
    operation: str,
    attempt: Callable[[], Awaitable[T]],
    retry_s: float,
    *,
    first_delay_s: float = 0.05,
    max_delay_s: float = 1.0,
) -> T:
    """Run ``attempt`` until it succeeds; a transient failure is retried (with a
    growing pause) for up to ``retry_s`` seconds, any other fails at once.

    Raises :class:`StoreFailure` (with the number of attempts)."""
    deadline = time.monotonic() + retry_s
    delay, attempts = first_delay_s, 0
    while True:
        attempts += 1
        try:
            result = await attempt()
        except Exception as exc:
            failure = classify(operation, exc)
            failure.attempts = attempts
            left = deadline - time.monotonic()
            if not failure.transient or left <= 0:
                log.error(
                    "store: %s failed: %s (%s), after %d attempt(s); not stored",
                    operation,
                    failure.reason,
                    failure.detail,
                    attempts,
                )
                raise failure from None
            if attempts == 1:
                log.warning(
                    "store: %s failed: %s (%s); retrying for up to %.0f s",
                    operation,
                    failure.reason,
                    failure.detail,
                    left,
                )
            await asyncio.sleep(min(delay, left))
            delay = min(max_delay_s, delay * 2)
            continue
        if attempts > 1:
            log.info("store: %s succeeded after %d attempts", operation, attempts)
        return result
