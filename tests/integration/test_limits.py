"""Limits on every field over real gRPC: a message that breaks one is dropped with an
Error naming the limit and the session goes on; undecodable and oversized messages get
a clear status, never UNKNOWN."""

from __future__ import annotations

import asyncio
import logging
import math

import grpc
import pytest

from parley import db
from parley.chaos.client import (
    CONVERSE,
    RawStream,
    audio_chunks,
    hello,
    is_finished,
    is_kind,
    turn_audio,
)
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack

Code = edge_pb2.Error.Code
ENGINES = {"stt": FixedStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()}


def limit_errors(stream: RawStream) -> dict[str, str]:
    return {e.limit: e.message for e in stream.errors() if e.code == Code.LIMIT_EXCEEDED}


async def test_each_broken_limit_is_named_and_the_turn_still_works(stack: Stack) -> None:
    await stack.start(
        dict(ENGINES),
        settings={"limits": {"max_frame_bytes": 1000, "max_audio_chunk_ms": 1000}},
    )
    stream = await RawStream(stack.address).open()
    spans = edge_pb2.Spans(otlp=b"\x0a" * 3)
    stream.send(
        hello(),
        edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(seq=1, jpeg=bytes(1001))),
        edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=0, pcm=bytes(32002))),
        edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=math.nan)),
        edge_pb2.EdgeEvent(spans=spans),
        *audio_chunks(turn_audio(), first_seq=1),
    )
    finished = await stream.wait_for(is_finished)
    assert finished is not None and finished.turn.stored and not finished.turn.interrupted
    errors = limit_errors(stream)
    assert "camera frame 1 is 1001 bytes, the limit is 1000" in errors["limits.max_frame_bytes"]
    assert "more than 1000 ms" in errors["limits.max_audio_chunk_ms"]
    assert "Ping.edge_time must be a finite number, not nan" in errors["finite"]
    assert any("bad spans message" in e.message for e in stream.errors())
    assert not [e for e in stream.errors() if e.fatal]
    stream.close_send()
    assert await stream.finish() == grpc.StatusCode.OK


async def test_only_the_most_recent_frames_are_kept_with_a_turn(stack: Stack) -> None:
    await stack.start(
        dict(ENGINES), settings={"limits": {"max_frames_per_turn": 3, "max_frames_per_s": 100.0}}
    )
    audio = audio_chunks(turn_audio())
    start = audio[0].audio.capture_time
    frames = [
        edge_pb2.EdgeEvent(
            frame=edge_pb2.VideoFrame(seq=i, jpeg=b"\xff\xd8%d" % i, capture_time=start + i * 0.1)
        )
        for i in range(10)
    ]
    stream = await RawStream(stack.address).open()
    stream.send(hello(), *frames, *audio)
    finished = await stream.wait_for(is_finished)
    assert finished is not None
    with db.database.connection_context():
        stored = db.Media.select().where(
            (db.Media.turn == finished.turn.turn_id) & (db.Media.kind == "frame")
        )
        assert [m.bytes for m in stored] == [len(f.frame.jpeg) for f in frames[-3:]]
    stream.close_send()
    await stream.finish()


async def test_too_fast_frames_are_dropped_and_reported_once(stack: Stack) -> None:
    await stack.start(dict(ENGINES), settings={"limits": {"max_frames_per_s": 1.0}})
    stream = await RawStream(stack.address).open()
    frame = edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=b"\xff\xd8"))
    stream.send(hello(), *[frame] * 20, edge_pb2.EdgeEvent(ping=edge_pb2.Ping()))
    await stream.wait_for(is_kind("pong"))
    rate = [e for e in stream.errors() if e.limit == "limits.max_frames_per_s"]
    assert len(rate) == 1  # 18 dropped, one report (then at most one per 5 s)
    stream.close_send()
    await stream.finish()


async def test_a_hello_longer_than_its_columns_is_refused_by_name(stack: Stack) -> None:
    await stack.start(dict(ENGINES))
    stream = await RawStream(stack.address).open()
    stream.send(hello("d" * 200))
    assert await stream.finish() == grpc.StatusCode.INVALID_ARGUMENT
    (error,) = stream.errors()
    assert error.code == Code.LIMIT_EXCEEDED and error.fatal
    assert "Hello.device_id is 200 characters, the limit is 128 (device.id)" == error.message


async def test_undecodable_bytes_are_a_bad_request_not_unknown(stack: Stack) -> None:
    await stack.start(dict(ENGINES))
    stream = await RawStream(stack.address).open()
    stream.send(hello(), b"\xff\xff\xff\xff", *audio_chunks(turn_audio()))
    finished = await stream.wait_for(is_finished)
    assert finished is not None  # the session went on
    (bad,) = [e for e in stream.errors() if e.code == Code.BAD_REQUEST]
    assert "could not be decoded" in bad.message and bad.limit == "decode"
    stream.close_send()
    assert await stream.finish() == grpc.StatusCode.OK
    # Undecodable first message: a clear refusal.
    first = await RawStream(stack.address).open()
    first.send(b"\x08\xff")
    assert await first.finish() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be decoded" in first.errors()[0].message


async def test_a_message_above_the_size_limit_ends_the_stream_with_resource_exhausted(
    stack: Stack,
) -> None:
    await stack.start(dict(ENGINES), settings={"limits": {"max_message_bytes": 100_000}})
    stream = await RawStream(stack.address).open()
    stream.send(hello(), edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=bytes(200_000))))
    assert await stream.finish() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in stream.details and "100000" in stream.details
    good = await RawStream(stack.address).open()  # the server is fine
    good.send(hello(), *audio_chunks(turn_audio()))
    assert await good.wait_for(is_finished) is not None
    good.close_send()
    await good.finish()


async def test_an_edge_that_does_not_read_is_cut_off_not_buffered_forever(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.edge_service")
    await stack.start(dict(ENGINES), settings={"limits": {"max_outbox_events": 200}})
    channel = grpc.aio.insecure_channel(stack.address)
    method = channel.stream_stream(
        CONVERSE,
        request_serializer=edge_pb2.EdgeEvent.SerializeToString,
        response_deserializer=edge_pb2.ServerEvent.FromString,
    )
    pings = edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=1.0))

    async def requests():  # type: ignore[no-untyped-def]
        yield hello()
        for _ in range(200_000):  # answers pile up: this edge reads none of them
            yield pings

    call = method(requests())
    code = await asyncio.wait_for(call.code(), 60)
    # The server ends it with RESOURCE_EXHAUSTED; a client still writing when that
    # arrives may see its own INTERNAL ("Internal error from Core") instead.
    assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL)
    await channel.close()
    for _ in range(100):  # the server's cleanup runs just after the status went out
        ended = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
        if ended:
            break
        await asyncio.sleep(0.05)
    assert len(ended) == 1 and "stopped reading" in ended[0]
    assert "limits.max_outbox_events" in ended[0]
