"""A server that says Welcome and then drops the stream: the edge's reconnect rate
stays bounded (the backoff grows to its cap), and a stream that stayed healthy resets
the backoff. Against a real gRPC server on loopback that does exactly that."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from edge.ring import AudioRing
from edge.stats import AgentStats
from edge.uplink import Uplink
from parley import rpc
from protos import edge_pb2, edge_pb2_grpc
from tests.edge.conftest import edge_config


class FlappingEdgeServer(edge_pb2_grpc.EdgeServicer):
    """Welcomes every stream, then ends it after ``hold_s[n]`` seconds (0 by default)."""

    def __init__(self, hold_s: dict[int, float] | None = None) -> None:
        self.hold_s = hold_s or {}
        self.connected_at: list[float] = []

    async def Converse(
        self, request_iterator: AsyncIterator[edge_pb2.EdgeEvent], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[edge_pb2.ServerEvent]:
        await anext(request_iterator)  # the Hello
        self.connected_at.append(time.monotonic())
        yield edge_pb2.ServerEvent(welcome=edge_pb2.Welcome(session_id="s", pipeline="p"))
        await asyncio.sleep(self.hold_s.get(len(self.connected_at) - 1, 0.0))


async def run_uplink(servicer: FlappingEdgeServer, seconds: float, **settings: object) -> Uplink:
    server = grpc.aio.server()
    edge_pb2_grpc.add_EdgeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    uplink = Uplink(
        edge_config(address, **settings),
        ring=AudioRing(10),
        stats=AgentStats(),
        dial=lambda: rpc.dial(address),
        hello=lambda: edge_pb2.Hello(device_id="flap-test"),
        on_event=lambda event: None,
    )
    uplink.healthy_s = 0.5
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        uplink.stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop(None)
    return uplink


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_a_server_that_drops_every_stream_sees_a_bounded_reconnect_rate() -> None:
    servicer = FlappingEdgeServer()
    uplink = await run_uplink(servicer, 4.0, reconnect_max_s=1.0)
    connects = servicer.connected_at
    # Backoff 0.125-0.25 s, 0.25-0.5 s, then 0.5-1 s (the cap): at most ~9 in 4 s.
    # (Resetting on every Welcome gave 0.125-0.25 s each time: 16 or more.)
    assert 4 <= len(connects) <= 10, gaps(connects)
    assert all(gap >= 0.45 for gap in gaps(connects)[2:]), gaps(connects)
    assert uplink.stats.connects == len(connects)


async def test_a_stream_that_stayed_healthy_resets_the_backoff() -> None:
    # Streams 0-3 drop at once (the delay grows to the cap), stream 4 stays up 1 s.
    servicer = FlappingEdgeServer(hold_s={4: 1.0})
    await run_uplink(servicer, 5.5, reconnect_max_s=1.0)
    delays = gaps(servicer.connected_at)
    assert len(delays) >= 5, delays
    assert delays[3] >= 0.45  # capped before the healthy stream
    assert delays[4] >= 1.0  # the healthy stream itself
    after = delays[4] - 1.0  # the delay after it: back to the first step (0.125-0.25 s)
    assert after < 0.45, delays


@pytest.fixture(autouse=True)
def _quiet_edge_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="edge")
