"""The audio waiting to be sent: a bounded ring of chunks (default 30 s).

Every captured chunk goes in; the connection's sender takes them out in order. While
the server is unreachable the ring fills; when it is full the oldest chunk is dropped
and counted, so after a long outage the most recent audio is what reaches the server,
with its original capture times. Chunks taken but not sent (the stream broke first)
are put back at the front, so nothing is sent twice and nothing unsent is lost.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable

from protos import edge_pb2


class AudioRing:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the audio buffer must hold at least one chunk")
        self.capacity = capacity
        self.dropped = 0  # chunks dropped because the ring was full
        self._chunks: collections.deque[edge_pb2.AudioChunk] = collections.deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._chunks)

    def append(self, chunk: edge_pb2.AudioChunk) -> bool:
        """Add the newest chunk; returns False when the oldest had to be dropped."""
        self._chunks.append(chunk)
        self._ready.set()
        if len(self._chunks) > self.capacity:
            self._chunks.popleft()
            self.dropped += 1
            return False
        return True

    def put_back(self, chunks: Iterable[edge_pb2.AudioChunk]) -> None:
        """Return chunks taken but never sent to the front, in their order (the
        oldest are dropped if that overfills the ring)."""
        self._chunks.extendleft(reversed(list(chunks)))
        while len(self._chunks) > self.capacity:
            self._chunks.popleft()
            self.dropped += 1
        if self._chunks:
            self._ready.set()

    def take(self) -> edge_pb2.AudioChunk | None:
        if not self._chunks:
            self._ready.clear()
            return None
        return self._chunks.popleft()

    async def get(self) -> edge_pb2.AudioChunk:
        """The oldest chunk, waiting for one if the ring is empty."""
        while (chunk := self.take()) is None:
            await self._ready.wait()
        return chunk

    @property
    def seconds_span(self) -> float:
        """Capture time covered from the oldest to the newest chunk held."""
        if len(self._chunks) < 2:
            return 0.0
        return self._chunks[-1].capture_time - self._chunks[0].capture_time
