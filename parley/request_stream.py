"""A gRPC request stream fed from a queue.

grpc.aio consumes a call's request iterator in a task of its own. When the call ends
(cancelled, the server gone) while that task waits for the next request inside an
async generator, the generator cannot be closed ("aclose(): asynchronous generator is
already running", "Task was destroyed but it is pending" in the log). A plain async
iterator over a queue has nothing to close.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueIterator(Generic[T]):
    """The items put in a queue until a None, as an async iterator that is not an async
    generator: gRPC's request consumer, cancelled while waiting in ``__anext__``, then
    has no generator to close (an async generator there makes asyncio log "aclose():
    asynchronous generator is already running")."""

    def __init__(self, queue: asyncio.Queue[T | None]) -> None:
        self.queue = queue

    def __aiter__(self) -> QueueIterator[T]:
        return self

    async def __anext__(self) -> T:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item
