"""Turn detection on real speech, streamed in 20 ms chunks as the edge sends it.

AudioConverter (any rate and channel count -> 16 kHz mono) -> TurnDetector with the
real Silero VAD. References are silero's own offline get_speech_timestamps (default
thresholds, 30 ms padding), rounded to 0.1 s, as given in issue 2.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.audio import AudioConverter, Resampler, float_to_pcm16, pcm16_to_float, read_audio
from parley.config import VadConfig
from server.turns import SpeechStarted, TurnDetector, TurnEnded, TurnEvent
from server.vad import SileroVad, VadModelError

DATA = Path(__file__).parents[1] / "data"
RATE = 16000
TOLERANCE_S = 0.15
PRE_ROLL = RATE * VadConfig().pre_roll_ms // 1000
LAMP = [(0.3, 1.5)]
JFK_300MS = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 11.0)]
# The last word of jfk ends at 10.55 s; its last turn runs on to the end of the clip
# only because a faint sound at 10.9 s scores as speech 288 ms after the pause began,
# just inside 300 ms. A window scored one notch differently (8 kHz input, or the
# clip starting elsewhere in the 32 ms window grid) lets the pause reach 300 ms and
# the turn ends with the last word. Either end is right; nothing else may move.
JFK_300MS_LAST_END_FROM = 10.5
JFK_1500MS = [(0.3, 11.0)]

Region = tuple[float, float]


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def lamp() -> tuple[np.ndarray, int]:
    return read_audio(DATA / "turn_on_the_living_room_lamp.wav")  # 44.1 kHz stereo


@pytest.fixture(scope="module")
def jfk() -> tuple[np.ndarray, int]:
    return read_audio(DATA / "jfk.flac")  # 44.1 kHz stereo


def stream(
    vad: SileroVad, pcm: np.ndarray, rate: int, **settings: Any
) -> tuple[list[TurnEvent], np.ndarray]:
    """Send int16 audio (frames[, channels]) in 20 ms chunks; returns events and 16 kHz audio."""
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    data = pcm.astype("<i2").tobytes()
    step = rate // 50 * channels * 2
    converter = AudioConverter(rate, channels)
    detector = TurnDetector(VadConfig(**settings), vad)
    events: list[TurnEvent] = []
    heard = []
    for i in range(0, len(data), step):
        samples = converter.convert(data[i : i + step])
        heard.append(samples)
        events += detector.feed(samples)
    heard.append(tail := converter.flush())
    events += detector.feed(tail)
    events += detector.flush()
    return events, np.concatenate(heard)


def describe(turns: list[TurnEnded]) -> str:
    return ", ".join(
        f"speech {t.start_sample / RATE:.3f}-{t.end_sample / RATE:.3f} "
        f"audio {t.audio_start_sample / RATE:.3f}-{t.audio_end_sample / RATE:.3f}"
        for t in turns
    )


def check_turns(
    events: list[TurnEvent],
    heard: np.ndarray,
    reference: list[Region],
    *,
    min_silence_ms: int | None = None,
    last_end_from: float | None = None,
) -> list[TurnEnded]:
    turns = [e for e in events if isinstance(e, TurnEnded)]
    assert len(turns) == len(reference), describe(turns)
    # Every turn is announced once, before it ends, with the same start.
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded] * len(turns)
    assert [e.start_sample for e in events[::2]] == [t.start_sample for t in turns]
    for i, (turn, (ref_start, ref_end)) in enumerate(zip(turns, reference, strict=True)):
        audio_start, audio_end = turn.audio_start_sample / RATE, turn.audio_end_sample / RATE
        where = f"turn {i}: {describe([turn])} vs reference {ref_start}-{ref_end}"
        assert audio_start <= ref_start, f"first syllable cut: {where}"
        assert abs(turn.start_sample / RATE - ref_start) <= TOLERANCE_S, where
        assert turn.start_sample - turn.audio_start_sample <= PRE_ROLL, where
        if last_end_from is not None and i == len(turns) - 1:
            assert last_end_from <= audio_end <= ref_end + TOLERANCE_S, where
        else:
            assert abs(audio_end - ref_end) <= TOLERANCE_S, where
            assert abs(turn.end_sample / RATE - ref_end) <= TOLERANCE_S, where
        expected = heard[turn.audio_start_sample : turn.audio_end_sample]
        np.testing.assert_array_equal(turn.audio, expected)
        if min_silence_ms is not None and turn.decided_sample < len(heard):
            # Closed by silence: decided one or two windows after min_silence.
            delay_ms = (turn.decided_sample - turn.end_sample) / RATE * 1000
            assert min_silence_ms <= delay_ms < min_silence_ms + 64, where
    return turns


def test_lamp_clip_is_one_turn(vad: SileroVad, lamp: tuple[np.ndarray, int]) -> None:
    events, heard = stream(vad, *lamp)  # default settings
    check_turns(events, heard, LAMP, min_silence_ms=VadConfig().min_silence_ms)


def test_jfk_phrases_with_300ms_silence(vad: SileroVad, jfk: tuple[np.ndarray, int]) -> None:
    events, heard = stream(vad, *jfk, min_silence_ms=300)
    check_turns(events, heard, JFK_300MS, min_silence_ms=300)


def test_jfk_is_one_turn_with_1500ms_silence(vad: SileroVad, jfk: tuple[np.ndarray, int]) -> None:
    events, heard = stream(vad, *jfk, min_silence_ms=1500)
    check_turns(events, heard, JFK_1500MS)


def test_lamp_then_silence_then_jfk_adds_a_turn(
    vad: SileroVad, lamp: tuple[np.ndarray, int], jfk: tuple[np.ndarray, int]
) -> None:
    (lamp_pcm, rate), (jfk_pcm, _) = lamp, jfk
    gap = np.zeros((2 * rate, 2), dtype=np.int16)
    offset = (len(lamp_pcm) + len(gap)) / rate
    events, heard = stream(vad, np.concatenate([lamp_pcm, gap, jfk_pcm]), rate, min_silence_ms=300)
    reference = LAMP + [(start + offset, end + offset) for start, end in JFK_300MS]
    last_end_from = JFK_300MS_LAST_END_FROM + offset
    check_turns(events, heard, reference, min_silence_ms=300, last_end_from=last_end_from)


def test_ten_seconds_of_silence_gives_nothing(vad: SileroVad) -> None:
    events, _ = stream(vad, np.zeros(10 * RATE, dtype=np.int16), RATE)
    assert events == []


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


@pytest.mark.parametrize("colour", ["white", "pink"])
@pytest.mark.parametrize("level_db", [-40, -20])
def test_steady_noise_gives_nothing(vad: SileroVad, colour: str, level_db: int) -> None:
    rng = np.random.default_rng(1234)
    noise = rng.standard_normal(10 * RATE) if colour == "white" else pink_noise(rng, 10 * RATE)
    noise *= 10 ** (level_db / 20) / np.std(noise)  # RMS level in dBFS
    events, _ = stream(vad, float_to_pcm16(noise), RATE, min_silence_ms=300)
    assert events == []


def convert_offline(pcm: np.ndarray, rate: int, new_rate: int, channels: int) -> np.ndarray:
    """A stereo int16 recording at another rate, mono or stereo, as int16."""
    audio = pcm16_to_float(pcm)
    if channels == 1:
        audio = audio.mean(axis=1, keepdims=True)
    out = []
    for channel in audio.T:
        resampler = Resampler(rate, new_rate)
        out.append(np.concatenate([resampler.process(channel), resampler.flush()]))
    stacked = np.stack(out, axis=1)
    return float_to_pcm16(stacked[:, 0] if channels == 1 else stacked)


@pytest.mark.parametrize(
    ("new_rate", "channels"),
    [(16000, 1), (8000, 1), (44100, 1), (48000, 2), (22050, 2)],
    ids=["16k-mono", "8k-mono", "44k1-mono", "48k-stereo", "22k05-stereo"],
)
def test_other_formats_give_the_same_turns(
    vad: SileroVad, jfk: tuple[np.ndarray, int], new_rate: int, channels: int
) -> None:
    pcm = convert_offline(*jfk, new_rate, channels)
    events, heard = stream(vad, pcm, new_rate, min_silence_ms=300)
    # At 8 kHz one window of the last word's tail scores 0.42 instead of 0.53.
    last_end_from = JFK_300MS_LAST_END_FROM if new_rate == 8000 else None
    check_turns(events, heard, JFK_300MS, min_silence_ms=300, last_end_from=last_end_from)


def test_batched_windows_match_per_stream_calls(
    vad: SileroVad, jfk: tuple[np.ndarray, int]
) -> None:
    _, heard = stream(vad, *jfk)
    windows = heard[: len(heard) // 512 * 512].reshape(-1, 512)
    offsets = [0, 40, 100]  # three streams at different places in the recording
    single = [vad.new_stream() for _ in offsets]
    batched = [vad.new_stream() for _ in offsets]
    for i in range(len(windows) - max(offsets)):
        rows = windows[[i + o for o in offsets]]
        expected = [vad.probability(s, row) for s, row in zip(single, rows, strict=True)]
        np.testing.assert_allclose(vad.probabilities(batched, rows), expected, atol=1e-5)


def test_missing_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VadModelError, match="not found"):
        SileroVad(tmp_path / "missing.onnx")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VadModelError, match="pip install --no-deps silero-vad"):
        SileroVad()


def test_vad_at_8khz_scores_256_sample_windows(lamp: tuple[np.ndarray, int]) -> None:
    vad8 = SileroVad(sample_rate=8000)
    assert (vad8.window, vad8.context) == (256, 32)
    pcm, rate = lamp
    audio = pcm16_to_float(convert_offline(pcm, rate, 8000, 1))
    stream_state = vad8.new_stream()
    windows = audio[: len(audio) // 256 * 256].reshape(-1, 256)
    probs = np.array([vad8.probability(stream_state, w) for w in windows])
    speech = np.flatnonzero(probs >= 0.5) * 256 / 8000
    assert 0.2 < speech.min() < 0.45 and 1.3 < speech.max() < 1.6
    with pytest.raises(ValueError, match="256 samples"):
        vad8.probability(stream_state, np.zeros(512, np.float32))
