"""The Converse stream from the edge's side: a Hello, then an outbox of events in,
and the server's events out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType

import grpc

from parley import rpc
from protos import edge_pb2, edge_pb2_grpc

_CLOSE = None


class Link:
    def __init__(self, server: str, hello: edge_pb2.Hello, *, outbox_size: int = 512) -> None:
        self.server = server
        self.hello = hello
        self._outbox: asyncio.Queue[edge_pb2.EdgeEvent | None] = asyncio.Queue(outbox_size)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None

    async def __aenter__(self) -> Link:
        self._channel = rpc.dial(self.server)
        self._call = edge_pb2_grpc.EdgeStub(self._channel).Converse(self._requests())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    async def _requests(self) -> AsyncIterator[edge_pb2.EdgeEvent]:
        yield edge_pb2.EdgeEvent(hello=self.hello)
        while (event := await self._outbox.get()) is not _CLOSE:
            yield event

    async def send(self, event: edge_pb2.EdgeEvent) -> None:
        await self._outbox.put(event)

    async def close_send(self) -> None:
        """Half-close: no more events from the edge; server events keep coming."""
        await self._outbox.put(_CLOSE)

    async def events(self) -> AsyncIterator[edge_pb2.ServerEvent]:
        assert self._call is not None, "use `async with Link(...)`"
        async for event in self._call:
            yield event
