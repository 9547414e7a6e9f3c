"""The Converse stream over real gRPC on loopback: event order, streaming while the
LLM generates, barge-in, dead workers, and bad input."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from parley import db, rpc
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    hello,
    is_kind,
    is_turn,
    speech,
)

Turn = edge_pb2.TurnEvent
Code = edge_pb2.Error.Code


def stored_turn(turn_id: str) -> db.Turn:
    with db.database.connection_context():
        return db.Turn.get_by_id(turn_id)


async def test_turn_events_arrive_in_order_and_audio_streams_while_llm_generates(
    stack: Stack, database_url: str
):
    llm = ScriptedLlm("The lamp is on now. Anything else I can do for you today?", delay=0.05)
    tts = ToneTts()
    await stack.start({"stt": FixedStt("turn on the lamp"), "llm": llm, "tts": tts})
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
    kinds = edge.kinds()
    assert kinds[0] == "welcome"
    turn_id = finished.turn.turn_id
    order = [
        kinds.index("turn"),  # speech started
        next(i for i, e in enumerate(edge.events) if is_turn(Turn.SPEECH_ENDED)(e)),
        kinds.index("transcript"),
        kinds.index("response"),
        kinds.index("audio"),
        len(kinds) - 1,  # FINISHED last
    ]
    assert order == sorted(order)
    assert edge.events[order[2]].transcript.text == "turn on the lamp"
    # The first audio went out before the LLM had finished: streaming, not batch.
    last_delta = max(
        i
        for i, e in enumerate(edge.events)
        if e.WhichOneof("event") == "response" and e.response.delta
    )
    assert kinds.index("audio") < last_delta
    audio = [e.audio for e in edge.events if e.WhichOneof("event") == "audio"]
    assert audio[-1].last and not audio[-1].pcm
    assert [a.seq for a in audio] == list(range(len(audio)))
    assert tts.texts == ["The lamp is on now.", "Anything else I can do for you today?"]
    latency = finished.turn.latency_ms
    assert (
        0 < latency["stt_done_ms"] <= latency["first_sentence_ms"] <= latency["first_audio_sent_ms"]
    )
    assert latency["overhead_ms"] == pytest.approx(
        sum(latency[f"{s}_overhead_ms"] for s in ("stt", "llm", "tts", "send"))
    )
    row = stored_turn(turn_id)
    assert (row.status, row.transcript) == ("done", "turn on the lamp")
    assert row.response.split() == llm.text.split()
    assert sorted(m.kind for m in row.media) == ["input", "output"]
    # where the VAD found speech in the stored input audio (its pre-roll before it)
    vad = row.outputs["vad"]
    seconds = next(m.seconds for m in row.media if m.kind == "input")
    assert 0 < vad["speech_start_s"] < vad["speech_end_s"] < seconds
    assert vad["speech_start_s"] == pytest.approx(0.2, abs=0.05)  # [vad] pre_roll_ms


async def test_history_is_sent_to_the_llm_on_the_next_turn(stack: Stack):
    llm = ScriptedLlm("Sure thing.")
    await stack.start(
        {"stt": FixedStt("lamp please"), "llm": llm, "tts": ToneTts()},
        params={"llm": {"system_prompt": "Be brief.", "history_turns": 4}},
    )
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        await edge.wait_for(is_turn(Turn.FINISHED))
        await edge.send(audio_events(samples, rate, start_seq=10_000))
        await edge.wait_until(lambda events: sum(map(is_turn(Turn.FINISHED), events)) == 2)
    second = llm.requests[1].messages
    assert [(m.role, m.content) for m in second] == [
        ("system", "Be brief."),
        ("user", "lamp please"),
        ("assistant", "Sure thing."),  # what was spoken (and heard)
        ("user", "lamp please"),
    ]


async def test_barge_in_cancels_the_running_llm_and_tts_calls(stack: Stack, database_url: str):
    # (grpc.aio ends a cancelled call's request stream first, so an idle TTS engine
    # sees its text stream end; a busy one is cancelled: either way the call is over.)
    llm = ScriptedLlm("One. " + "word " * 400, delay=0.02)  # would talk for 8 s
    tts = ToneTts(delay=0.01)
    await stack.start({"stt": FixedStt(), "llm": llm, "tts": tts})
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        first_audio = await edge.wait_for(is_kind("audio"))
        turn_id = first_audio.audio.turn_id
        # The user speaks again while the answer is being generated.
        await edge.send(audio_events(samples, rate, start_seq=10_000))
        stop = await edge.wait_for(is_kind("stop"))
        finished = await edge.wait_for(is_turn(Turn.FINISHED, turn_id))
        await asyncio.wait_for(llm.cancelled.wait(), 5)
        await asyncio.wait_for(tts.ended.wait(), 5)
    assert stop.stop.turn_id == turn_id
    assert finished.turn.interrupted
    row = stored_turn(turn_id)
    assert row.status == "interrupted"
    assert 0 < len(row.response) < len(llm.text)


async def test_dead_worker_gives_an_error_and_the_session_survives(stack: Stack, database_url: str):
    llm = ScriptedLlm("Back again.")
    await stack.start({"stt": FixedStt(), "llm": llm, "tts": ToneTts()}, dead=("llm",))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        error = await edge.wait_for(is_kind("error"))
        first = await edge.wait_for(is_turn(Turn.FINISHED))
        assert error.error.code == Code.STAGE_UNAVAILABLE
        assert error.error.stage == "llm" and not error.error.fatal
        row = stored_turn(first.turn.turn_id)
        assert (row.status, row.error_stage, row.transcript) == ("failed", "llm", "hello there")
        # The worker comes (back) up on its address: the next turn on the same stream works.
        await stack.start_worker("llm", llm)
        await asyncio.sleep(rpc.RECONNECT_MAX_S + 0.2)  # the server's channel reconnects
        await edge.send(audio_events(samples, rate, start_seq=10_000))
        second = await edge.wait_for(
            lambda e: is_turn(Turn.FINISHED)(e) and e.turn.turn_id != first.turn.turn_id
        )
    assert stored_turn(second.turn.turn_id).status == "done"
    assert stored_turn(second.turn.turn_id).response.strip() == "Back again."


@pytest.mark.parametrize(
    ("first", "code", "status"),
    [
        (hello(pipeline="nope", token="secret"), Code.UNKNOWN_PIPELINE, grpc.StatusCode.NOT_FOUND),
        (hello(rate=1000, token="secret"), Code.BAD_AUDIO_FORMAT, grpc.StatusCode.INVALID_ARGUMENT),
        (
            hello(channels=9, token="secret"),
            Code.BAD_AUDIO_FORMAT,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            hello(encoding=0, token="secret"),
            Code.BAD_AUDIO_FORMAT,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (hello(token="wrong"), Code.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
        (hello(device_id="", token="secret"), Code.BAD_REQUEST, grpc.StatusCode.INVALID_ARGUMENT),
        (
            edge_pb2.EdgeEvent(ping=edge_pb2.Ping()),
            Code.BAD_REQUEST,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_bad_hello_gets_a_clear_error_and_the_server_stays_up(
    stack: Stack, first, code, status
):
    await stack.start(
        {"stt": FixedStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()},
        server={"token": "secret"},
    )
    async with EdgeClient(stack.address, first) as edge:
        error = await edge.wait_for(is_kind("error"))
        await asyncio.wait_for(edge.reader, 5)
    assert error.error.code == code and error.error.fatal
    assert error.error.message
    assert edge.status == status
    # A good stream right after works.
    samples, rate = speech()
    async with EdgeClient(stack.address, hello(token="secret")) as good:
        await good.send(audio_events(samples, rate))
        finished = await good.wait_for(is_turn(Turn.FINISHED))
    assert not finished.turn.interrupted


async def test_unexpected_messages_are_reported_and_the_session_goes_on(stack: Stack):
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()})
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send([edge_pb2.EdgeEvent(hello=hello()), edge_pb2.EdgeEvent()])
        await edge.wait_until(lambda _: len(edge.errors()) == 2)
        errors = edge.errors()
        # A chunk cut mid-sample is carried over, not lost: the turn is still heard.
        events = audio_events(samples, rate, start_seq=1)
        first = events[0].audio
        events[0:1] = [
            edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=0, pcm=first.pcm[:3])),
            edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=1, pcm=first.pcm[3:])),
        ]
        await edge.send(events)
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
    assert all(e.code == Code.BAD_REQUEST and not e.fatal for e in errors)
    assert "unexpected hello" in errors[0].message
    assert "unexpected empty" in errors[1].message
    assert not finished.turn.interrupted


async def test_frames_seen_during_the_turn_are_stored_and_reach_a_vision_llm(
    stack: Stack, database_url: str
):
    llm = ScriptedLlm("I see a lamp.")
    await stack.start(
        {"stt": FixedStt(), "llm": llm, "tts": ToneTts()}, params={"llm": {"vision": True}}
    )
    samples, rate = speech()
    audio = audio_events(samples, rate)
    start = audio[0].audio.capture_time
    stale = edge_pb2.VideoFrame(seq=0, jpeg=b"\xff\xd8old", capture_time=start - 60)
    frames = [
        edge_pb2.VideoFrame(seq=i, jpeg=b"\xff\xd8frame%d" % i, capture_time=start + i)
        for i in (1, 2)
    ]
    events = [edge_pb2.EdgeEvent(frame=stale), *audio]
    events[50:50] = [edge_pb2.EdgeEvent(frame=f) for f in frames]  # during the speech
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(events)
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
    with db.database.connection_context():
        stored = [m for m in stored_turn(finished.turn.turn_id).media if m.kind == "frame"]
    assert [m.bytes for m in stored] == [len(f.jpeg) for f in frames]
    assert [m.seconds for m in stored] == [0.0, 1.0]
    assert llm.requests[0].messages[-1].images == (frames[-1].jpeg,)
