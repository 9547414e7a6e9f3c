"""The batched VAD scheduler finds exactly the turns that per-session scoring finds.

Several streams of real speech (the JFK and lamp clips, at different phases and chunk
sizes) are scored together through one BatchScheduler on the real Silero VAD, and each
is also run alone through TurnDetector.feed (one window per model call). Same events,
same boundaries, same audio, and bit-for-bit the same probabilities: onnxruntime
computes each row of a batch exactly as it computes a batch of one. Then a real server:
several sessions at once get the turn that one session alone gets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from parley.audio import AudioConverter, read_audio
from parley.config import VadConfig
from protos import edge_pb2
from server.turns import SpeechStarted, TurnDetector, TurnEnded, TurnEvent
from server.vad import SileroVad, VadStream
from server.vad_scheduler import BatchScheduler
from tests.integration.conftest import DATA, EdgeClient, Stack, audio_events, hello, is_turn, speech
from tests.integration.test_turns_real_speech import JFK_300MS, LAMP, check_turns

RATE = 16000


class RecordingVad(SileroVad):
    """The real VAD, one window per call, remembering each probability."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def probability(self, stream: VadStream, window: npt.ArrayLike) -> float:
        prob = super().probability(stream, window)
        self.seen.append(prob)
        return prob


@dataclass
class Case:
    clip: str
    chunk_ms: int
    lead: int  # samples of silence in front: the stream's phase against the window grid
    settings: dict[str, int] = field(default_factory=dict)


CASES = [
    Case("jfk.flac", 20, 0, {"min_silence_ms": 300}),
    Case("jfk.flac", 60, 7 * 320 + 111, {"min_silence_ms": 300}),
    Case("jfk.flac", 20, 33 * 512 + 200, {"min_silence_ms": 300}),
    Case("turn_on_the_living_room_lamp.wav", 20, 0),
    Case("turn_on_the_living_room_lamp.wav", 40, 5000),
    Case("turn_on_the_living_room_lamp.wav", 60, 1234, {"min_silence_ms": 300}),
]


def chunks(case: Case) -> list[np.ndarray]:
    """The clip with its lead silence, converted to 16 kHz mono chunk by chunk as the
    server converts what an edge sends."""
    pcm, rate = read_audio(DATA / case.clip)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    lead = np.zeros((case.lead * rate // RATE, *pcm.shape[1:]), np.int16)
    data = np.concatenate([lead, pcm]).astype("<i2").tobytes()
    step = rate * case.chunk_ms // 1000 * channels * 2
    converter = AudioConverter(rate, channels)
    out = [converter.convert(data[i : i + step]) for i in range(0, len(data), step)]
    return [*out, converter.flush()]


def alone(case: Case, audio: list[np.ndarray]) -> tuple[list[TurnEvent], list[float]]:
    vad = RecordingVad()
    detector = TurnDetector(VadConfig(**case.settings), vad)
    events = [e for chunk in audio for e in detector.feed(chunk)] + detector.flush()
    return events, vad.seen


async def batched(
    scheduler: BatchScheduler[SileroVad], case: Case, audio: list[np.ndarray]
) -> tuple[list[TurnEvent], list[float]]:
    detector = TurnDetector(VadConfig(**case.settings), scheduler.model)
    stream = scheduler.open()
    events: list[TurnEvent] = []
    seen: list[float] = []
    for chunk in audio:
        probs = await stream.score(detector.push(chunk))
        seen += probs.tolist()
        events += detector.step(probs)
        await asyncio.sleep(0)  # let the other streams in
    probs = await stream.score(detector.tail_window())
    seen += probs.tolist()
    events += detector.step(probs) + detector.finish()
    stream.close()
    return events, seen


def same_events(got: list[TurnEvent], want: list[TurnEvent]) -> None:
    assert [type(e) for e in got] == [type(e) for e in want]
    for a, b in zip(got, want, strict=True):
        if isinstance(a, SpeechStarted):
            assert a == b
        else:
            assert isinstance(b, TurnEnded)
            fields = ("start_sample", "end_sample", "audio_start_sample", "decided_sample")
            assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
            assert a.forced == b.forced
            np.testing.assert_array_equal(a.audio, b.audio)


async def test_streams_scored_together_find_the_turns_each_finds_alone() -> None:
    audio = [chunks(case) for case in CASES]
    reference = [alone(case, a) for case, a in zip(CASES, audio, strict=True)]
    scheduler = BatchScheduler(SileroVad(), interval_s=0.004)
    try:
        results = await asyncio.gather(
            *(batched(scheduler, case, a) for case, a in zip(CASES, audio, strict=True))
        )
    finally:
        await scheduler.aclose()
    stats = scheduler.stats
    assert stats.largest_call == len(CASES)  # the streams really shared model calls
    assert stats.calls < stats.windows / 2
    for case, (events, probs), (want_events, want_probs) in zip(
        CASES, results, reference, strict=True
    ):
        np.testing.assert_array_equal(np.array(probs, np.float32), np.array(want_probs, np.float32))
        same_events(events, want_events)
        # and they are the right turns (silero's offline reference, shifted by the lead)
        shift = case.lead / RATE
        regions = JFK_300MS if case.clip == "jfk.flac" else LAMP
        ended = [e for e in events if isinstance(e, TurnEnded)]
        assert len(ended) == len(regions)
        for turn, (start, _) in zip(ended, regions, strict=True):
            assert abs(turn.start_sample / RATE - shift - start) <= 0.15


async def test_the_lamp_clip_checked_against_silero_through_the_scheduler() -> None:
    case = CASES[3]
    audio = chunks(case)
    scheduler = BatchScheduler(SileroVad())
    try:
        events, _ = await batched(scheduler, case, audio)
    finally:
        await scheduler.aclose()
    check_turns(events, np.concatenate(audio), LAMP, min_silence_ms=VadConfig().min_silence_ms)


async def test_sessions_at_once_get_the_turns_each_gets_alone(stack: Stack) -> None:
    """Six edges stream the lamp clip at once, each at its own phase, through a real
    server: each session's speech start and end are where its stream alone puts them."""
    from tests.fakes import FixedStt, ScriptedLlm, ToneTts

    await stack.start({"stt": FixedStt("lamp"), "llm": ScriptedLlm("On."), "tts": ToneTts()})
    samples, rate = speech(silence_s=1.5)
    vad = SileroVad()

    def expected(audio: np.ndarray) -> tuple[int, int]:
        detector = TurnDetector(VadConfig(), vad)
        floats = audio.astype(np.float32) / 32768
        events = [e for i in range(0, len(floats), 320) for e in detector.feed(floats[i : i + 320])]
        (ended,) = [e for e in events if isinstance(e, TurnEnded)]
        return ended.start_sample, ended.end_sample

    async def session(lead_ms: int) -> None:
        audio = np.concatenate([np.zeros(lead_ms * rate // 1000, np.int16), samples])
        events = audio_events(audio, rate)
        t0 = events[0].audio.capture_time
        async with EdgeClient(stack.address, hello(device_id=f"edge-{lead_ms}")) as edge:
            await edge.send(events, pace=0.002)
            ended = await edge.wait_for(is_turn(edge_pb2.TurnEvent.SPEECH_ENDED))
            started = await edge.wait_for(is_turn(edge_pb2.TurnEvent.SPEECH_STARTED))
            await edge.close_send()
        start, end = expected(audio)
        assert started.turn.edge_time - t0 == pytest.approx(start / RATE, abs=1e-6)
        assert ended.turn.edge_time - t0 == pytest.approx(end / RATE, abs=1e-6)

    await asyncio.gather(*(session(ms) for ms in (0, 13, 40, 77, 120, 333)))
    assert stack.server is not None
    assert stack.server.vad.stats.largest_call > 1  # the sessions shared model calls
