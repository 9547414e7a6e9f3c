"""Audio taken exactly once across streams of the same server: acknowledgements while
audio flows, the resume point in Welcome, repeats dropped by seq."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from parley import db
from parley.chaos.client import (
    RATE,
    RawStream,
    audio_chunks,
    hello,
    is_finished,
    is_kind,
    speech_pcm,
    turn_audio,
)
from parley.chaos.crash import reference_turn_seconds
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack

ENGINES = {"stt": FixedStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()}


def acks(stream: RawStream) -> list[int]:
    return [e.audio_ack.next_seq for e in stream.events if e.HasField("audio_ack")]


async def welcome(stream: RawStream) -> edge_pb2.Welcome:
    event = await stream.wait_for(is_kind("welcome"))
    assert event is not None
    return event.welcome


def reference_seconds() -> float:
    """The turn's length when the clip is sent in one stream."""
    return reference_turn_seconds(np.frombuffer(speech_pcm(), np.int16))


async def test_audio_is_acknowledged_as_it_streams_and_speech_once_stored(
    stack: Stack,
) -> None:
    await stack.start(dict(ENGINES))
    stream = await RawStream(stack.address).open()
    speech = audio_chunks(bytes(2 * RATE) + turn_audio())  # 1 s of silence, then a turn
    stream.send(hello("pi", epoch="e1"), *speech)
    assert (await welcome(stream)).next_audio_seq == 0
    finished = await stream.wait_for(is_finished)
    assert finished is not None
    for event in audio_chunks(bytes(2 * RATE), first_seq=len(speech)):  # live silence
        stream.send(event)
        await asyncio.sleep(0.02)
    points = acks(stream)
    # about once a second (ACK_EVERY_S) over 2 s of live silence, and only forward
    assert len(points) >= 2 and points == sorted(set(points))
    assert points[-1] >= len(speech)  # the turn is stored: all of it is released
    stream.close_send()
    await stream.finish()


async def test_a_reconnect_to_the_same_server_resumes_and_repeats_are_dropped(
    stack: Stack,
) -> None:
    await stack.start(dict(ENGINES))
    pcm = bytes(2 * RATE) + turn_audio()  # 1 s of silence, then the turn
    chunks = audio_chunks(pcm)
    half = 50 + 40  # the stream breaks in the middle of the speech
    first = await RawStream(stack.address).open()
    first.send(hello("pi", epoch="e1"), *chunks[:half])
    await asyncio.sleep(0.5)
    first.send(edge_pb2.EdgeEvent(ping=edge_pb2.Ping()))
    await first.wait_for(is_kind("pong"))
    first.cancel()  # the network went away
    await first.finish()
    confirmed = max(acks(first), default=0)
    assert 0 < confirmed <= 70  # some of the silence, never the open speech
    second = await RawStream(stack.address).open()
    # An edge resends everything it kept: here, all of it (repeats included).
    second.send(hello("pi", epoch="e1"), *chunks)
    resumed = (await welcome(second)).next_audio_seq
    assert confirmed <= resumed <= 70  # what the server had taken (some not acked yet)
    finished = await second.wait_for(is_finished)
    assert finished is not None and finished.turn.stored
    second.close_send()
    await second.finish()
    with db.database.connection_context():
        turns = list(db.Turn.select())
    assert len(turns) == 1  # the half turn of the first stream was not stored
    assert turns[0].speech_seconds == pytest.approx(reference_seconds(), abs=0.1)
    # A third stream resends the whole clip again: all of it is a repeat now.
    third = await RawStream(stack.address).open()
    third.send(hello("pi", epoch="e1"), *chunks, edge_pb2.EdgeEvent(ping=edge_pb2.Ping()))
    assert (await welcome(third)).next_audio_seq == len(chunks)  # all taken: half-closed
    await third.wait_for(is_kind("pong"))
    await asyncio.sleep(0.5)
    third.close_send()
    await third.finish()
    assert not third.finished() and not third.errors()  # repeats are dropped silently
    with db.database.connection_context():
        assert db.Turn.select().count() == 1
    # Another epoch (the agent restarted and counts from 0 again) starts afresh.
    fresh = await RawStream(stack.address).open()
    fresh.send(hello("pi", epoch="e2"))
    assert (await welcome(fresh)).next_audio_seq == 0
    fresh.close_send()
    await fresh.finish()


async def test_a_seq_that_goes_back_within_a_stream_is_dropped_and_reported(
    stack: Stack,
) -> None:
    await stack.start(dict(ENGINES))
    stream = await RawStream(stack.address).open()
    chunks = audio_chunks(speech_pcm()[: 2 * RATE // 10], first_seq=100)
    stream.send(hello(), *chunks, *audio_chunks(bytes(640), first_seq=101))
    stream.send(edge_pb2.EdgeEvent(ping=edge_pb2.Ping()))
    await stream.wait_for(is_kind("pong"))
    (error,) = stream.errors()
    assert error.code == edge_pb2.Error.BAD_REQUEST and error.limit == "audio.seq"
    assert "audio chunk 101 does not follow 104" in error.message
    stream.close_send()
    await stream.finish()


async def test_a_seq_at_the_top_of_the_range_is_refused_and_poisons_nothing(
    stack: Stack,
) -> None:
    """Found by the fuzzer: seq 2^64 - 1 made the next acknowledgement 2^64, which no
    Welcome could carry, so every later stream of that device failed."""
    await stack.start(dict(ENGINES))
    top = edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=(1 << 64) - 1, pcm=bytes(640)))
    stream = await RawStream(stack.address).open()
    stream.send(hello("pi", epoch="e1"), top)
    stream.close_send()
    await stream.finish()
    assert [e.limit for e in stream.errors()] == ["audio.seq"]
    again = await RawStream(stack.address).open()
    again.send(hello("pi", epoch="e1"), *audio_chunks(turn_audio()))
    assert (await welcome(again)).next_audio_seq == 0
    assert await again.wait_for(is_finished) is not None
    again.close_send()
    await again.finish()
