"""Preemptive generation over real gRPC: an answer started at a pause in the user's
speech is sent when the turn is confirmed (sooner than starting then), and thrown away
(its LLM call cancelled at the worker, nothing sent) when the user goes on speaking."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from parley import db
from protos import edge_pb2
from tests.engines.conftest import (
    tiny_engines,
    tiny_models,  # noqa: F401  (a fixture)
)
from tests.fakes import FixedStt, LengthStt, ScriptedLlm, ToneTts
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
RATE = 16000


def stored_turns() -> list[db.Turn]:
    with db.database.connection_context():
        return list(db.Turn.select())


async def send_in_real_time(edge: EdgeClient, samples: np.ndarray) -> None:
    """Each 20 ms chunk when its capture time comes (no drift under load)."""
    events = audio_events(samples, RATE)
    for event in events:
        await asyncio.sleep(max(0.0, event.audio.capture_time + 0.02 - time.monotonic()))
        await edge.send([event])


async def first_audio_after_speech_end(stack: Stack, preemptive: bool) -> tuple[float, dict]:
    """One paced turn of the lamp command: seconds from the end of speech (edge clock)
    to the first answer audio arriving, and the turn's latency record."""
    # The LLM takes 0.25 s to its first sentence ("Okay." is complete when "Sure" begins).
    llm = ScriptedLlm("Okay. Sure thing.", delay=0.25)
    await stack.start(
        {"stt": FixedStt("turn on the lamp"), "llm": llm, "tts": ToneTts()},
        settings={"turn": {"preemptive": preemptive}},
    )
    samples, _ = speech(silence_s=0.3)
    async with EdgeClient(stack.address, hello()) as edge:
        await send_in_real_time(edge, samples)
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
        audio_at = edge.arrived[edge.kinds().index("audio")]
    assert len(llm.requests) == 1  # one run: the speculation became the turn
    record = dict(finished.turn.latency_ms)
    return audio_at - record["speech_end_edge_s"], record


async def test_a_committed_speculation_sends_the_first_audio_sooner(tmp_path: Path):
    results = {}
    for preemptive in (False, True):
        stack = Stack(tmp_path / str(preemptive))
        try:
            results[preemptive] = await first_audio_after_speech_end(stack, preemptive)
        finally:
            await stack.close()
    (plain, plain_record), (early, record) = results[False], results[True]
    # Without it the LLM's 0.25 s come after the 0.5 s of silence; with it they overlap.
    assert early < plain - 0.15, (early, plain)
    # On the server's clock: decision -> first audio sent, without and with.
    assert record["first_audio_sent_ms"] < plain_record["first_audio_sent_ms"] - 150
    assert "speculation_started_ms" not in plain_record
    # Started at the first check point (200 ms of silence), ~300 ms before the decision.
    assert -450 < record["speculation_started_ms"] < -150
    assert 0 <= record["speculation_committed_ms"] < 20  # the decision
    assert record["confirm_ms"] > 0  # the audio was ready and waited for the turn
    assert record["first_audio_sent_ms"] < record["llm_ms"]  # the LLM is off the path
    assert record["speculations_discarded"] == 0
    assert record["stt_ms"] > 0 and record["llm_ms"] > 0.2  # timed from the pause
    assert record["overhead_ms"] < record["confirm_ms"]  # the wait is not overhead


async def test_speech_that_resumes_discards_the_speculation(
    stack: Stack, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="server.session")
    llm = ScriptedLlm("Okay. " + "word " * 200, delay=0.02)  # talks for 4 s
    tts = ToneTts()
    await stack.start(
        {"stt": LengthStt(), "llm": llm, "tts": tts},
        vad={"min_silence_ms": 800},
        settings={"turn": {"preemptive": True}},
    )
    clip, rate = speech(silence_s=0.0)
    first = clip[: int(1.6 * RATE)]  # speech ends at ~1.47 s
    second = clip[int(0.25 * RATE) : int(1.6 * RATE)]  # speech starts at ~0.07 s
    pause = np.zeros(int(0.3 * RATE), np.int16)
    rest = np.concatenate([np.zeros(int(0.1 * RATE), np.int16), second])
    tail = np.zeros(int(1.5 * RATE), np.int16)
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(np.concatenate([first, pause]), rate), pace=0.02)
        # ~0.45 s of silence so far: past the check point (0.2 s), before the end (0.8 s).
        await asyncio.wait_for(llm.started.wait(), 10)  # the speculation is answering
        assert not [e for e in edge.events if e.WhichOneof("event") in ("transcript", "audio")]
        offset = len(first) + len(pause)
        await edge.send(audio_events(np.concatenate([rest, tail]), rate, start_seq=offset // 320))
        await asyncio.wait_for(llm.cancelled.wait(), 5)  # cancelled at the worker
        finished = await edge.wait_for(is_turn(Turn.FINISHED), timeout=30)
    turn_id = finished.turn.turn_id
    # Nothing of the discarded run reached the edge: one transcript, after the turn ended.
    kinds = edge.kinds()
    ended = next(i for i, e in enumerate(edge.events) if is_turn(Turn.SPEECH_ENDED)(e))
    transcripts = [e.transcript.text for e in edge.events if is_kind("transcript")(e)]
    assert len(transcripts) == 1
    assert kinds.index("transcript") > ended and kinds.index("audio") > ended
    # The speculation heard the first part only; the turn, the whole utterance.
    spec_heard = float(llm.requests[0].messages[-1].content.split()[0])
    heard = float(transcripts[0].split()[0])
    # (the turn's audio: 0.2 s before the first speech to 0.06 s after the last)
    assert spec_heard < 1.6 and heard > 1.6 + 1.2
    assert len(llm.requests) == 2
    [row] = stored_turns()
    assert (row.id, row.status, row.transcript) == (turn_id, "done", transcripts[0])
    record = finished.turn.latency_ms
    assert record["speculations_discarded"] == 1
    assert "speculation_model_wasted_ms" in record
    # The second pause started a second speculation, and that one was committed.
    assert "speculation_committed_ms" in record
    # When the stream ends, the session says what it speculated.
    summary = "speculations: 2 started, 1 committed, 1 discarded"
    async with asyncio.timeout(5):
        while not any(summary in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the conversation's cleanup closes the session again
    assert sum(summary in r.getMessage() for r in caplog.records) == 1  # said once


def paused_twice() -> np.ndarray:
    """The lamp command, a 0.4 s pause (past the check point, short of the end), the
    command again, then silence: one turn with a pause in it."""
    clip, _ = speech(silence_s=0.0)
    first = clip[: int(1.6 * RATE)]  # speech ends at ~1.47 s
    second = clip[int(0.25 * RATE) : int(1.6 * RATE)]  # speech starts at ~0.07 s
    pause = np.zeros(int(0.4 * RATE), np.int16)
    return np.concatenate([first, pause, second, np.zeros(int(1.5 * RATE), np.int16)])


async def speculated_turn(stack: Stack) -> tuple[edge_pb2.TurnEvent, list[edge_pb2.ServerEvent]]:
    """One turn with a pause in it, streamed unpaced (the detector's events depend on
    the audio, not on the clock): one speculation is discarded, the next committed."""
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(paused_twice(), RATE))
        finished = await edge.wait_for(is_turn(Turn.FINISHED), timeout=60)
    return finished.turn, edge.events


def assert_one_answer(finished: edge_pb2.TurnEvent, events: list[edge_pb2.ServerEvent]) -> None:
    record = finished.latency_ms
    assert record["speculations_discarded"] == 1
    assert "speculation_committed_ms" in record
    ended = next(i for i, e in enumerate(events) if is_turn(Turn.SPEECH_ENDED)(e))
    said = [i for i, e in enumerate(events) if e.WhichOneof("event") in ("transcript", "audio")]
    assert said and min(said) > ended  # nothing before the turn was confirmed
    assert sum(map(is_kind("transcript"), events)) == 1
    audio = [e.audio for e in events if is_kind("audio")(e)]
    assert sum(len(a.pcm) for a in audio) > 0 and audio[-1].last
    [row] = stored_turns()  # stored once
    assert (row.id, row.status) == (finished.turn_id, "done")


async def test_instant_engines_answer_a_speculated_turn_once(stack: Stack):
    from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine

    engines = {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}
    await stack.start(engines, vad={"min_silence_ms": 800}, settings={"turn": {"preemptive": True}})
    finished, events = await speculated_turn(stack)
    assert_one_answer(finished, events)
    [row] = stored_turns()
    assert row.transcript == "what does instant mean"
    assert row.spoken == ["This is an instant answer.", "It exists to measure overhead."]
    # The trace says so: the turn span's figures, and the discarded run's spans in it.
    assert stack.server is not None
    await asyncio.to_thread(stack.server.telemetry.flush)
    with db.database.connection_context():
        spans = list(db.Span.select().where(db.Span.trace_id == row.trace_id))
    [turn] = [s for s in spans if s.name == "turn"]
    assert turn.attributes["parley.latency.speculations_discarded"] == 1
    assert turn.attributes["parley.latency.speculation_started_ms"] < 0
    assert [s.name for s in spans].count("stt") == 2  # the discarded run's, the turn's


@pytest.mark.slow
async def test_tiny_engines_answer_a_speculated_turn_once(
    stack: Stack,
    tiny_models: dict[str, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    # Real faster-whisper, llama.cpp and piper engines on the tiny models.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engines = await tiny_engines(tiny_models)
    await stack.start(
        engines,
        params={"llm": {"max_tokens": 24}},
        vad={"min_silence_ms": 800},
        settings={"turn": {"preemptive": True}},
    )
    finished, events = await speculated_turn(stack)
    assert_one_answer(finished, events)
    assert finished.latency_ms["stt_model_ms"] > 0  # the real model ran
