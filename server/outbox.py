"""The server's side of the response stream: events are queued without waiting, and
one writer task hands them to gRPC in order.

The pipeline never waits on the edge's network to go on with its work, and
``on_sent`` callbacks fire when gRPC has taken an event for the wire (that is where
"first audio sent" is measured). The queue is bounded (``limits.max_outbox_events``):
an edge that stops reading while it keeps sending overflows it, and ``overflowed`` is
set so the stream can be ended rather than fill the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import grpc

from protos import edge_pb2

log = logging.getLogger(__name__)

OnSent = Callable[[], None]


class Emit(Protocol):
    def __call__(self, event: edge_pb2.ServerEvent, on_sent: OnSent | None = None) -> None: ...


class Outbox:
    def __init__(self, context: grpc.aio.ServicerContext, max_events: int = 0) -> None:
        """``max_events``: events queued at most (0: unbounded)."""
        self._context = context
        self._max_events = max_events
        self.overflowed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[edge_pb2.ServerEvent, OnSent | None]] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_all(), name="outbox-writer")

    def __call__(self, event: edge_pb2.ServerEvent, on_sent: OnSent | None = None) -> None:
        if self._max_events and self._queue.qsize() >= self._max_events:
            self.overflowed.set()  # the edge is not reading: the stream will be ended
            return
        self._queue.put_nowait((event, on_sent))

    async def _write_all(self) -> None:
        while True:
            event, on_sent = await self._queue.get()
            try:
                await self._context.write(event)
            except Exception as exc:  # the stream is gone; nothing more can be sent
                log.debug("response stream closed: %s", exc)
                return
            finally:
                self._queue.task_done()
            if on_sent is not None:
                on_sent()

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been handed to gRPC (or ``timeout``)."""
        if not self._writer.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._queue.join()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Send what is queued (up to ``drain_timeout`` seconds), then stop."""
        await self.drained(drain_timeout)
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)
