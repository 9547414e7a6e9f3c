"""The real sounddevice path: a PulseAudio null sink stands in for the sound card.

Speech played into the sink with paplay is captured from its monitor by the edge's
microphone code and streamed to a real server; answers are played by the edge's
speaker code into the same sink and recorded from the monitor with parec.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import mic as mic_module
from edge.agent import EdgeAgent
from edge.devices import DeviceError
from edge.mic import Microphone
from edge.speaker import Speaker
from edge.tls import secure_dial
from parley import db
from protos import edge_pb2
from server.session import Session
from tests.edge.conftest import (
    LAMP,
    Events,
    Pulse,
    SpeakingTts,
    at_rate,
    edge_config,
    lamp_16k,
    reference_turn_seconds,
    running,
    sine,
    wait_until,
)
from tests.fakes import FixedStt, ScriptedLlm
from tests.integration.conftest import Stack

Turn = edge_pb2.TurnEvent
RATE = 16000


def tone_level(audio: np.ndarray, freq: float, rate: int, window: int) -> np.ndarray:
    """Amplitude of ``freq`` in consecutive windows (a one-bin DFT per window)."""
    frames = audio[: audio.size - audio.size % window].reshape(-1, window).astype(np.float64)
    probe = np.exp(-2j * np.pi * freq * np.arange(window) / rate)
    return np.abs(frames @ probe) * 2 / window / 32768


def best_match(recording: np.ndarray, piece: np.ndarray) -> tuple[int, float]:
    """Offset in ``recording`` where ``piece`` fits best, and the normalised correlation
    there (1.0: identical up to a gain)."""
    rec, ref = recording.astype(np.float64), piece.astype(np.float64)
    n, size = ref.size, rec.size + ref.size
    spectrum = np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size))
    corr = np.fft.irfft(spectrum, size)[: rec.size - n + 1]
    power = np.concatenate([[0.0], np.cumsum(rec**2)])
    energy = np.sqrt(np.maximum(power[n:] - power[:-n], 0.0)) * np.sqrt(np.sum(ref**2))
    score = corr / np.maximum(energy, 1e-9)
    best = int(np.argmax(score))
    return best, float(score[best])


def pulse_agent(stack: Stack, **settings: Any) -> tuple[EdgeAgent, Events]:
    """An agent on the null sink's monitor (microphone) and the sink (speaker)."""
    events = Events()
    agent = EdgeAgent(
        edge_config(stack.address, **settings),
        source=Microphone("pulse"),
        speaker=Speaker("pulse"),
        dial=lambda: secure_dial(stack.address),
        observer=events,
    )
    return agent, events


def stored_turns(device: str = "test-edge") -> list[db.Turn]:
    with db.database.connection_context():
        return list(
            db.Turn.select()
            .join(db.Conversation)
            .where(db.Conversation.device == device)
            .order_by(db.Turn.created_at)
        )


async def test_spoken_turn_through_the_real_microphone_and_answer_through_the_speaker(
    pulse: Pulse, stack: Stack, tmp_path: Path
) -> None:
    # The answer is itself speech (the same command, as a 22.05 kHz TTS would send it,
    # streamed in 250 ms chunks): in half-duplex mode it must not become a turn.
    answer = at_rate(lamp_16k(), RATE, 22050)
    tts = SpeakingTts(answer, 22050, chunk_s=0.25, delay=0.05)
    await stack.start(
        {"stt": FixedStt("turn on the lamp"), "llm": ScriptedLlm("Okay."), "tts": tts}
    )
    agent, events = pulse_agent(stack)
    recording = tmp_path / "monitor.raw"
    parec = pulse.record(recording)
    try:
        async with running(agent):
            await asyncio.sleep(0.3)
            player = pulse.play(LAMP)
            await wait_until(lambda: events.turns(Turn.FINISHED), timeout=20)
            await wait_until(lambda: any(k == "finished" for k, *_ in agent.playback), timeout=10)
            await asyncio.to_thread(player.wait, 5)
            await asyncio.sleep(1.0)  # the answer's echo would have become a turn by now
    finally:
        parec.terminate()
        parec.wait(5)

    # One turn, as long as the same clip gives when sent directly.
    (finished,) = events.turns(Turn.FINISHED)
    turns = stored_turns()
    assert [t.id for t in turns] == [finished.turn_id]
    assert turns[0].status == "done"
    assert turns[0].speech_seconds == pytest.approx(reference_turn_seconds(), abs=0.2)
    assert agent.stats.chunks_gated > 0  # the mic was muted while the answer played

    # Playback was reported with edge times: it lasted as long as the answer.
    played = {kind: at for kind, turn, at in agent.playback if turn == finished.turn_id}
    assert played["finished"] - played["started"] == pytest.approx(answer.size / 22050, abs=0.15)
    await wait_until(lambda: "voice_to_voice_ms" in stored_turns()[0].latency, timeout=5)
    assert 0 < stored_turns()[0].latency["voice_to_voice_ms"] < 5000

    # The agent shipped its own spans, children of the turn's trace.
    assert stack.server is not None
    await asyncio.to_thread(stack.server.telemetry.flush)
    with db.database.connection_context():
        edge_spans = {
            span.name: span for span in db.Span.select().where(db.Span.service == "parley-edge")
        }
    assert set(edge_spans) == {"edge.capture", "edge.playback"}
    assert {span.trace_id for span in edge_spans.values()} == {turns[0].trace_id}

    # The monitor heard the user's command, then the whole answer without a gap:
    # each quarter of the answer sits where the first quarter puts it.
    heard = np.frombuffer(recording.read_bytes(), np.int16)
    reference = lamp_16k()[int(0.2 * RATE) : int(1.7 * RATE)]  # the spoken part
    user_at, user_score = best_match(heard, reference)
    later = heard[user_at + reference.size :]
    answer_at, score = best_match(later, reference)
    assert user_score > 0.8 and score > 0.8
    quarters = np.array_split(reference, 4)
    offsets = []
    for i, quarter in enumerate(quarters):
        start = answer_at + sum(q.size for q in quarters[:i])
        at, _ = best_match(later[max(0, start - 800) : start + quarter.size + 800], quarter)
        offsets.append(at - min(800, start))
    assert max(offsets) - min(offsets) <= 16  # within 1 ms: no gap, no skip


async def test_stop_playback_silences_the_speaker_within_100_ms(pulse: Pulse) -> None:
    events: list[tuple[str, str, float]] = []
    speaker = Speaker("pulse", on_event=lambda kind, turn, at: events.append((kind, turn, at)))
    mic = Microphone("pulse")  # hears the sink's monitor
    loop = asyncio.get_running_loop()
    mic.start(loop)
    speaker.start(loop)
    captured: list[tuple[float, bytes]] = []
    latency = mic.latency

    async def capture() -> None:
        async for chunk in mic.chunks():
            captured.append((chunk.capture_time, chunk.pcm))

    task = asyncio.create_task(capture())
    try:
        speaker.play("t", sine(1000, 3.0, 24000).tobytes(), 24000, last=True)
        await wait_until(lambda: events, timeout=5)
        await asyncio.sleep(0.8)
        stopped_at = time.monotonic()
        assert speaker.interrupt("t") == ["t"]
        await asyncio.sleep(0.6)
    finally:
        task.cancel()
        speaker.stop()
        mic.stop()
    assert [k for k, *_ in events] == ["started", "interrupted"]
    assert events[1][2] == pytest.approx(stopped_at, abs=0.01)
    # Capture times are estimates of when the monitor heard each sample; counting
    # back the input latency the microphone subtracted makes this an upper bound.
    times = np.array([t for t, _ in captured])
    audio = np.frombuffer(b"".join(p for _, p in captured), np.int16)
    window = 80  # 5 ms
    level = tone_level(audio, 1000, RATE, window)
    at = times[0] + np.arange(level.size) * window / RATE
    loud = at[level > 0.1]
    assert loud.size and loud[0] < stopped_at - 0.5  # it was playing
    silent_from = loud[-1] + window / RATE + latency
    assert silent_from - stopped_at < 0.1


async def test_barge_in_in_full_duplex_stops_playback_and_reports_it(
    pulse: Pulse, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long, quiet tone as the answer, generated about as fast as it plays (so the
    # turn is still running on the server): the user talks over it.
    tts = SpeakingTts(sine(1000, 8.0, RATE, amplitude=0.1), RATE, chunk_s=0.5, delay=0.4)
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Okay."), "tts": tts})
    received: list[edge_pb2.PlaybackEvent] = []
    handle = Session.handle

    async def recording_handle(self: Session, event: edge_pb2.EdgeEvent) -> Any:
        if event.HasField("playback"):
            received.append(event.playback)
        return await handle(self, event)

    monkeypatch.setattr(Session, "handle", recording_handle)
    agent, events = pulse_agent(stack, full_duplex=True)
    recording = tmp_path / "monitor.raw"
    parec = pulse.record(recording)
    try:
        async with running(agent):
            await asyncio.sleep(0.3)
            pulse.play(LAMP)
            await wait_until(lambda: any(k == "started" for k, *_ in agent.playback), timeout=20)
            first_turn = agent.playback[0][1]
            await asyncio.sleep(0.5)
            pulse.play(LAMP)  # the user speaks while the answer plays
            await wait_until(lambda: any(k == "interrupted" for k, *_ in agent.playback), 10)
            await wait_until(lambda: any(p.kind == 3 for p in received), timeout=5)
            await asyncio.sleep(1.5)
    finally:
        parec.terminate()
        parec.wait(5)
    stops = [e.stop for e in events.events if e.HasField("stop")]
    assert stops and stops[0].turn_id == first_turn
    assert [(k, t) for k, t, _ in agent.playback][:2] == [
        ("started", first_turn),
        ("interrupted", first_turn),
    ]
    kinds = [(p.kind, p.turn_id) for p in received if p.turn_id == first_turn]
    assert kinds[:2] == [
        (edge_pb2.PlaybackEvent.STARTED, first_turn),
        (edge_pb2.PlaybackEvent.INTERRUPTED, first_turn),
    ]
    assert agent.stats.chunks_gated == 0  # full duplex: the mic stayed live
    await wait_until(lambda: stored_turns()[0].status == "interrupted", timeout=5)
    # The tone was audible, and stopped long before its 8 s were up.
    heard = np.frombuffer(recording.read_bytes(), np.int16)
    level = tone_level(heard, 1000, RATE, 320)
    playing = np.flatnonzero(level > 0.05)
    assert playing.size > 10
    assert (playing[-1] - playing[0]) * 0.02 < 4.0


async def test_a_microphone_that_stops_delivering_audio_is_an_error(
    pulse: Pulse, monkeypatch: pytest.MonkeyPatch
) -> None:
    mic = Microphone("pulse")
    mic.start(asyncio.get_running_loop())
    got = []

    async def consume() -> None:
        async for chunk in mic.chunks():
            got.append(chunk)

    task = asyncio.create_task(consume())
    try:
        await wait_until(lambda: len(got) > 5, timeout=10)
        monkeypatch.setattr(mic_module, "STALL_S", 0.5)  # instead of 5 s, once it runs
        mic._stream.stop()  # the device goes away under the agent
        with pytest.raises(DeviceError, match="no audio from microphone pulse"):
            await asyncio.wait_for(task, 5)
    finally:
        task.cancel()
        mic.stop()
