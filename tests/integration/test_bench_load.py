"""`parley bench load` against a real server (instant engines in this process)."""

from __future__ import annotations

import asyncio
import os

import grpc
import pytest

from parley import rpc
from parley.cli import build_parser
from parley.commands.bench_load import measure
from parley.commands.load_floor import FloorServicer
from parley.config import load_config
from protos import edge_pb2, edge_pb2_grpc
from server import wire
from tests.integration.conftest import Stack
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine


@pytest.mark.timeout(120)
async def test_load_on_a_running_server_answers_every_turn(stack: Stack) -> None:
    config = await stack.start(
        {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}
    )
    argv = f"bench load --server {stack.address} --pipeline test --streams 4 --seconds 8"
    args = build_parser().parse_args([*argv.split(), "--gap-s", "1", "--chunk-ms", "60"])
    result = await measure(args, config)
    assert (result["server"], result["chunk_ms"], result["turns_per_cycle"]) == ("external", 60, 1)
    (step,) = result["steps"]
    # 8 s of 4 s cycles at random phases: every stream speaks once or twice
    assert 4 <= step["turns"]["expected"] <= 8
    assert step["turns"]["answered"] == step["turns"]["detected"] == step["turns"]["expected"]
    assert step["dropped"]["streams_failed"] == step["dropped"]["chunks_unsent"] == 0
    after = step["after_decision_ms"]
    assert 0 < after["p50"] <= after["p99"] < step["speech_end_to_first_audio_ms"]["p50"]
    assert step["behind_real_time_ms"]["p50"] >= 0
    # this process is the server: it is found by its port, and its VAD thread by name
    assert result["processes"]["server"] == [os.getpid()]
    assert step["cpu"]["server_percent"] > 0
    assert step["vad_cpu_ms_per_window"] > 0
    assert stack.server is not None and stack.server.vad.stats.windows > 4 * 5 * 31


@pytest.mark.timeout(120)
async def test_the_floor_server_takes_the_same_load_and_is_measured() -> None:
    """--floor: the same streams against a server that only takes messages (its own
    process, found by its port): CPU figures, no turns."""
    argv = "bench load --floor --streams 3 --seconds 6 --gap-s 1 --chunk-ms 40"
    args = build_parser().parse_args(argv.split())
    result = await measure(args, load_config(None))
    assert (result["server"], result["chunk_ms"]) == ("floor", 40)
    (step,) = result["steps"]
    assert "turns" not in step and step["dropped"]["streams_failed"] == 0
    assert step["dropped"]["chunks_unsent"] == 0
    assert (
        step["cpu"]["server_percent"] > 0
        and "parley-vad" not in step["cpu"]["server_threads_percent"]
    )
    assert "vad_cpu_ms_per_window" not in step and len(result["processes"]["server"]) == 1
    assert step["in_real_time"] is True
    assert step["rss_mb"]["server"] > 0


def test_the_floor_servicer_answers_hello_and_ping_and_nothing_else() -> None:
    async def converse() -> list[str]:
        server, port, _ = await rpc.start_server(
            "127.0.0.1:0", lambda s: wire.add_edge_servicer(FloorServicer(), s), []
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = edge_pb2_grpc.EdgeStub(channel).Converse()
                hello = edge_pb2.Hello(device_id="d", audio_format=edge_pb2.AudioFormat())
                await call.write(edge_pb2.EdgeEvent(hello=hello))
                await call.write(edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(pcm=bytes(1280))))
                await call.write(edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=7.0)))
                await call.done_writing()
                return [event.WhichOneof("event") async for event in call]
        finally:
            await server.stop(None)

    assert asyncio.run(converse()) == ["welcome", "pong"]
