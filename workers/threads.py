"""Run blocking, iterator-shaped inference in a thread without blocking the event loop.

``iterate_in_thread`` streams what a blocking generator yields into async code and,
when the consumer stops early (a cancelled gRPC call, barge-in), sets ``stop`` so the
generator can end between items instead of running to completion.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]], *, maxsize: int = 64
) -> AsyncGenerator[T, None]:
    """Yield the items of ``produce(stop)``, which runs in its own thread.

    ``produce`` should check ``stop.is_set()`` between items; it is set as soon as
    the async consumer goes away. Exceptions raised in the thread re-raise here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: object) -> None:
        # Blocks the producer thread while the queue is full (backpressure), but
        # gives up once the consumer is gone.
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                future.result(timeout=0.1)
                return
            except TimeoutError:
                continue
        future.cancel()

    def work() -> None:
        try:
            for item in produce(stop):
                if stop.is_set():
                    break
                put(item)
        except BaseException as exc:  # re-raised in the consumer
            put(exc)
        else:
            put(_DONE)

    thread = threading.Thread(target=work, name="engine-inference", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
