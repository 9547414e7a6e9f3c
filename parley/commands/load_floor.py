"""The transport floor for `parley bench load --floor`: a Converse server that only
takes messages.

It is registered and started exactly as Parley's server is (``server.wire``'s
decoder, ``parley.rpc.start_server``'s options, one grpc.aio event loop), answers a
Hello with a Welcome and a Ping with a Pong, and drops everything else unread beyond
decoding: no VAD, no turns, no store. Its CPU per stream under the same load is what
the gRPC stream alone costs, the part of the server's figure that Parley's own code
cannot cut (docs/BENCHMARKS.md, "Live streams").

Run as ``python -m parley.commands.load_floor PORT`` (the benchmark starts and stops
it); it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc

from parley import rpc
from parley.errors import ParleyError
from protos import edge_pb2
from server import wire

START_TIMEOUT_S = 30.0


class FloorServicer:
    """Converse: Welcome, Pong, and nothing else."""

    async def Converse(
        self,
        request_iterator: AsyncIterator[edge_pb2.EdgeEvent | None],
        context: grpc.aio.ServicerContext,
    ) -> None:
        async for event in request_iterator:
            if event is None:
                continue
            kind = event.WhichOneof("event")
            if kind == "hello":
                welcome = edge_pb2.Welcome(
                    session_id="floor", input_format=event.hello.audio_format
                )
                await context.write(edge_pb2.ServerEvent(welcome=welcome))
            elif kind == "ping":
                pong = edge_pb2.Pong(edge_time=event.ping.edge_time)
                await context.write(edge_pb2.ServerEvent(pong=pong))


async def serve(port: int) -> None:
    server, _, _ = await rpc.start_server(
        f"127.0.0.1:{port}",
        lambda s: wire.add_edge_servicer(FloorServicer(), s),
        [wire.SERVICE_NAME],
    )
    await server.wait_for_termination()


def start(port: int) -> subprocess.Popen[bytes]:
    """The floor server in a process of its own, listening on ``port`` when this
    returns. Raises ParleyError if it does not come up within START_TIMEOUT_S."""
    process = subprocess.Popen([sys.executable, "-m", "parley.commands.load_floor", str(port)])
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ParleyError(f"the floor server exited with status {process.returncode}")
        with contextlib.suppress(grpc.FutureTimeoutError, grpc.RpcError):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return process
        time.sleep(0.1)
    process.kill()
    raise ParleyError(f"the floor server did not listen on port {port} within {START_TIMEOUT_S} s")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(sys.argv[1])))
