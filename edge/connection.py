"""One Converse stream of the agent: the Hello, an outbox of events, the server's
events, and what was left unsent when it broke.

The outbox is small (about a second of audio), so when the network is slow the audio
waits in the agent's ring buffer, where it is counted and bounded, not here. Events
are handed to gRPC one at a time by the request generator. Audio is not salvaged
from here when a stream ends: the ring keeps every chunk until the server
acknowledges it (see :mod:`edge.ring`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from parley.request_stream import QueueIterator
from protos import edge_pb2, edge_pb2_grpc

OUTBOX_EVENTS = 50


class Connection:
    def __init__(
        self, channel: grpc.aio.Channel, hello: edge_pb2.Hello, *, outbox: int = OUTBOX_EVENTS
    ) -> None:
        self.channel = channel
        self.hello = hello
        self._outbox: asyncio.Queue[edge_pb2.EdgeEvent | None] = asyncio.Queue(outbox + 1)
        self._outbox.put_nowait(edge_pb2.EdgeEvent(hello=hello))  # first, always
        self._call = edge_pb2_grpc.EdgeStub(channel).Converse(QueueIterator(self._outbox))

    @property
    def backlog(self) -> int:
        """Events waiting in the outbox."""
        return self._outbox.qsize()

    async def send(self, event: edge_pb2.EdgeEvent) -> None:
        """Queue an event, waiting while the outbox is full."""
        await self._outbox.put(event)

    def offer(self, event: edge_pb2.EdgeEvent) -> bool:
        """Queue an event unless the outbox is full (returns whether it was queued)."""
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def close_send(self) -> None:
        """Half-close: the server finishes what it has and ends the stream."""
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            self._call.cancel()

    def events(self) -> AsyncIterator[edge_pb2.ServerEvent]:
        return self._call.__aiter__()

    async def close(self) -> None:
        self._call.cancel()
        await self.channel.close()
