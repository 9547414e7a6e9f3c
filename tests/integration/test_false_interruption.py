"""Barge-in over real gRPC when the new speech has no words (a cough the STT turns into
nothing): the stopped answer resumes where the edge stopped playing it, and the history
and the store hold the whole answer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from parley import db
from protos import edge_pb2
from tests.fakes import ScriptedLlm, ScriptedStt, ToneTts
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
Playback = edge_pb2.PlaybackEvent
RATE = 16000
ANSWER = "Okay. The lamp is on. Anything else?"  # three sentences, 1 s of audio each


def playback(turn_id: str, kind: int, at: float) -> edge_pb2.EdgeEvent:
    return edge_pb2.EdgeEvent(
        playback=edge_pb2.PlaybackEvent(turn_id=turn_id, kind=kind, edge_time=at)
    )


async def playing_answer(edge: EdgeClient, samples: np.ndarray) -> tuple[str, float]:
    """Say ``samples``; once the answer's audio comes, report it playing. Returns the
    turn id and the edge time it started."""
    await edge.send(audio_events(samples, RATE))
    first = await edge.wait_for(is_kind("audio"))
    started = time.monotonic()
    await edge.send([playback(first.audio.turn_id, Playback.STARTED, started)])
    return first.audio.turn_id, started


def answer_audio(events: list[edge_pb2.ServerEvent], turn_id: str) -> list[edge_pb2.AudioOut]:
    return [e.audio for e in events if is_kind("audio")(e) and e.audio.turn_id == turn_id]


@pytest.mark.parametrize("llm_delay", [0.0, 0.3], ids=["answer-made", "answer-being-made"])
async def test_a_false_interruption_resumes_the_answer(stack: Stack, llm_delay: float):
    llm = ScriptedLlm(ANSWER, delay=llm_delay)
    stt = ScriptedStt(["turn on the lamp", "", "thanks"])  # the cough has no words
    await stack.start({"stt": stt, "llm": llm, "tts": ToneTts(seconds=1.0)})
    samples, rate = speech()
    cough = samples[int(0.25 * RATE) : int(1.0 * RATE)]  # 0.75 s: longer than min speech
    silence = np.zeros(int(1.0 * RATE), np.int16)
    async with EdgeClient(stack.address, hello()) as edge:
        turn_id, started = await playing_answer(edge, samples)
        await edge.send(audio_events(cough, rate, start_seq=10_000))
        stop = await edge.wait_for(is_kind("stop"))
        assert stop.stop.turn_id == turn_id
        stopped_at = len(edge.events)
        # The edge stopped after playing 0.8 s of the answer (most of its first sentence).
        await edge.send([playback(turn_id, Playback.INTERRUPTED, started + 0.8)])
        await edge.send(audio_events(silence, rate, start_seq=20_000))
        await edge.wait_for(is_turn(Turn.NO_SPEECH))
        await edge.wait_until(
            lambda events: any(a.last for a in answer_audio(events[stopped_at:], turn_id))
        )
        await edge.wait_for(is_turn(Turn.FINISHED, turn_id))
        resumed = answer_audio(edge.events[stopped_at:], turn_id)
        # It played to the end this time; the user then says something with words.
        await edge.send([playback(turn_id, Playback.FINISHED, started + 5.0)])
        await edge.send(audio_events(samples, rate, start_seq=30_000))
        await edge.wait_until(lambda events: sum(map(is_turn(Turn.FINISHED), events)) == 3)
    assert resumed[0].resume and not resumed[0].pcm
    assert not any(a.resume for a in resumed[1:])
    seconds = sum(len(a.pcm) for a in resumed) / 2 / RATE
    assert seconds == pytest.approx(3.0 - 0.8, abs=0.01)  # the rest, from where it stopped
    assert resumed[-1].last
    with db.database.connection_context():
        first_row = db.Turn.get_by_id(turn_id)
        statuses = [t.status for t in db.Turn.select().order_by(db.Turn.position)]
    assert statuses == ["done", "no_speech", "done"]
    assert (first_row.status, first_row.response.strip()) == ("done", ANSWER)
    # The history holds the whole answer, as heard; the cough is not remembered.
    last = llm.requests[-1].messages
    assert [(m.role, m.content) for m in last] == [
        ("user", "turn on the lamp"),
        ("assistant", ANSWER),
        ("user", "thanks"),
    ]


async def test_speech_with_words_still_stops_the_answer(stack: Stack):
    # The same barge-in with words: the answer being made is cancelled at the worker,
    # and the next turn's history holds the part that was heard.
    llm = ScriptedLlm(ANSWER, delay=0.3)
    stt = ScriptedStt(["turn on the lamp", "stop"])
    tts = ToneTts(seconds=1.0)
    await stack.start({"stt": stt, "llm": llm, "tts": tts})
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        turn_id, started = await playing_answer(edge, samples)
        await edge.send(audio_events(samples, rate, start_seq=10_000))
        await edge.wait_for(is_kind("stop"))
        await edge.send([playback(turn_id, Playback.INTERRUPTED, started + 0.5)])
        finished = await edge.wait_for(is_turn(Turn.FINISHED, turn_id))
        await edge.wait_until(lambda events: sum(map(is_turn(Turn.FINISHED), events)) == 2)
    assert finished.turn.interrupted
    assert not [a for a in answer_audio(edge.events, turn_id) if a.resume]
    assert llm.cancelled.is_set()
    with db.database.connection_context():
        assert db.Turn.get_by_id(turn_id).status == "interrupted"
    assert [(m.role, m.content) for m in llm.requests[-1].messages] == [
        ("user", "turn on the lamp"),
        ("assistant", "Okay."),  # heard: 0.5 s of its first sentence
        ("user", "stop"),
    ]


async def test_a_burst_shorter_than_min_speech_does_not_stop_the_answer(stack: Stack):
    llm = ScriptedLlm(ANSWER)
    await stack.start({"stt": ScriptedStt(["turn on the lamp"]), "llm": llm, "tts": ToneTts()})
    samples, rate = speech()
    burst = samples[int(0.45 * RATE) : int(0.55 * RATE)]  # 100 ms of speech: a cough
    async with EdgeClient(stack.address, hello()) as edge:
        turn_id, _ = await playing_answer(edge, samples)
        quiet = np.zeros(int(0.8 * RATE), np.int16)
        await edge.send(audio_events(np.concatenate([burst, quiet]), rate, start_seq=10_000))
        await edge.send([edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=1.0))])
        await edge.wait_for(is_kind("pong"))  # every chunk before it was handled
        finished = await edge.wait_for(is_turn(Turn.FINISHED, turn_id))
    assert not [e for e in edge.events if is_kind("stop")(e)]
    assert sum(map(is_turn(Turn.SPEECH_STARTED), edge.events)) == 1  # no new turn
    assert not finished.turn.interrupted
    assert answer_audio(edge.events, turn_id)[-1].last
