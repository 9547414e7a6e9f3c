"""The turn detector's state machine, driven by a fake VAD whose probability is the audio.

Each 512-sample window is filled with one value and the fake VAD returns it as the
speech probability, so a test writes the probability track directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from parley.config import TurnConfig, VadConfig
from parley.errors import ConfigError
from server.turns import (
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnPaused,
)
from server.vad import VadStream

W = 512  # window at 16 kHz: 32 ms


class ProbabilityIsAudioVad:
    sample_rate = 16000
    window = W

    def new_stream(self) -> VadStream:
        return VadStream(context=np.zeros(64, dtype=np.float32))

    def probability(self, stream: VadStream, window: npt.ArrayLike) -> float:
        return float(np.asarray(window)[0])


def track(*runs: tuple[float, int]) -> np.ndarray:
    """(probability, windows) runs -> audio whose windows carry those probabilities."""
    return np.concatenate([np.full(n * W, p, dtype=np.float32) for p, n in runs])


def run(audio: np.ndarray, chunk: int = 320, **settings: Any) -> list[TurnEvent]:
    detector = TurnDetector(VadConfig(**settings), ProbabilityIsAudioVad())
    events: list[TurnEvent] = []
    for i in range(0, len(audio), chunk):
        events += detector.feed(audio[i : i + chunk])
    return events + detector.flush()


def turns(events: list[TurnEvent]) -> list[TurnEnded]:
    return [e for e in events if isinstance(e, TurnEnded)]


def test_bursts_up_to_min_speech_are_dropped() -> None:
    # min_speech 250 ms = 4000 samples: 7 windows (3584) are a click, 8 (4096) a turn.
    assert run(track((0, 20), (0.9, 7), (0, 40))) == []
    events = run(track((0, 20), (0.9, 8), (0, 40)))
    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    assert events[0] == SpeechStarted(20 * W, 20 * W - 16 * VadConfig().pre_roll_ms, 28 * W)


def test_speech_started_is_emitted_once_confirmed() -> None:
    detector = TurnDetector(VadConfig(), ProbabilityIsAudioVad())
    assert detector.feed(track((0, 5), (0.9, 7))) == []
    assert not detector.in_turn
    assert detector.feed(track((0.9, 1))) == [SpeechStarted(5 * W, 0, 13 * W)]
    assert detector.in_turn
    assert detector.feed(track((0.9, 30))) == []


def test_silence_closes_the_turn_at_its_start() -> None:
    # 500 ms = 8000 samples: silero closes at the window starting >= 8000 after temp_end.
    events = run(track((0, 10), (0.9, 20), (0.1, 40)), min_silence_ms=500, post_roll_ms=0)
    (turn,) = turns(events)
    assert (turn.start_sample, turn.end_sample) == (10 * W, 30 * W)
    assert turn.decided_sample == (30 + 16 + 1) * W
    assert not turn.forced


def test_pauses_shorter_than_min_silence_and_middling_probabilities_keep_the_turn() -> None:
    audio = track((0, 10), (0.9, 20), (0.1, 10), (0.9, 20), (0.4, 30), (0.9, 10), (0, 40))
    (turn,) = turns(run(audio, min_silence_ms=500))
    assert (turn.start_sample, turn.end_sample) == (10 * W, 100 * W)


def test_probability_between_thresholds_does_not_reset_pending_silence() -> None:
    # As in silero: only a window >= threshold cancels a pending end.
    audio = track((0.9, 20), (0.1, 8), (0.4, 4), (0.1, 6), (0, 20))
    (turn,) = turns(run(audio, min_silence_ms=500))
    assert turn.end_sample == 20 * W


def test_turn_audio_has_pre_and_post_roll() -> None:
    audio = track((0, 20), (0.9, 20), (0, 40))
    audio += np.linspace(0, 1e-3, len(audio), dtype=np.float32)  # make samples distinct
    (turn,) = turns(run(audio, pre_roll_ms=100, post_roll_ms=60))
    assert turn.audio_start_sample == 20 * W - 1600
    assert turn.audio_end_sample == 40 * W + 960
    np.testing.assert_array_equal(turn.audio, audio[turn.audio_start_sample : 40 * W + 960])


def test_pre_roll_is_clipped_at_stream_start() -> None:
    (turn,) = turns(run(track((0.9, 20), (0, 40))))
    assert turn.audio_start_sample == 0 and turn.start_sample == 0


def test_max_turn_forces_a_cut_and_speech_goes_on_in_a_new_turn() -> None:
    # 1 s holds 31 windows: 104 windows of speech are cut 31 + 31 + 31 + 11.
    events = run(track((0, 5), (0.9, 104), (0, 40)), max_turn_s=1.0)
    ended = turns(events)
    assert [t.forced for t in ended] == [True, True, True, False]
    assert [t.end_sample - t.start_sample for t in ended] == [31 * W] * 3 + [11 * W]
    assert ended[0].start_sample == 5 * W
    assert ended[-1].end_sample == 109 * W
    assert sum(isinstance(e, SpeechStarted) for e in events) == 4


def test_flush_closes_an_open_turn() -> None:
    # Speech still going: the turn ends at the end of the stream (a partial window).
    audio = np.concatenate([track((0, 5), (0.9, 20)), np.full(100, 0.9, np.float32)])
    (turn,) = turns(run(audio))
    assert turn.end_sample == len(audio) and not turn.forced
    # Inside a pause shorter than min_silence: the turn ends where the pause began.
    (turn,) = turns(run(track((0, 5), (0.9, 20), (0.1, 5))))
    assert turn.end_sample == 25 * W


def test_flush_resets_positions() -> None:
    detector = TurnDetector(VadConfig(), ProbabilityIsAudioVad())
    detector.feed(track((0, 10), (0.9, 20)))
    assert len(turns(detector.flush())) == 1
    events = detector.feed(track((0.9, 10)))
    assert events == [SpeechStarted(0, 0, 8 * W)]


def test_audio_kept_while_silent_is_bounded() -> None:
    detector = TurnDetector(VadConfig(pre_roll_ms=100), ProbabilityIsAudioVad())
    silence = np.zeros(320, dtype=np.float32)
    for _ in range(3000):  # 60 s
        assert detector.feed(silence) == []
        assert detector.buffered_samples <= 1600 + W + 320
    assert detector.samples_fed == 3000 * 320


@pytest.mark.parametrize(
    "settings",
    [
        {"threshold": 0.3, "neg_threshold": 0.5},
        {"threshold": 1.5},
        {"max_turn_s": 0.2, "min_speech_ms": 250},
    ],
)
def test_bad_settings_cannot_reach_a_detector(settings: dict[str, Any]) -> None:
    # VadConfig refuses them (parley/config.py), so a TurnDetector never sees them.
    with pytest.raises(ConfigError, match=r"^\[vad\] "):
        VadConfig(**settings)


def test_push_then_step_equals_feed_however_the_probabilities_are_grouped() -> None:
    audio = track((0, 10), (0.9, 20), (0.1, 40), (0.9, 12), (0, 30))
    want = run(audio)
    vad = ProbabilityIsAudioVad()
    detector = TurnDetector(VadConfig(), vad)
    held: list[np.ndarray] = []  # windows pushed, not stepped yet
    events: list[TurnEvent] = []
    for i, start in enumerate(range(0, len(audio), 960)):
        held += list(detector.push(audio[start : start + 960]))
        if i % 3 == 2:  # step the windows of three pushes at once
            events += detector.step([float(w[0]) for w in held])
            held = []
    events += detector.step([float(w[0]) for w in held])
    events += detector.step([float(w[0]) for w in detector.tail_window()])
    events += detector.finish()
    assert [type(e) for e in events] == [type(e) for e in want]
    got, expected = turns(events), turns(want)
    assert [(t.start_sample, t.end_sample, t.decided_sample) for t in got] == [
        (t.start_sample, t.end_sample, t.decided_sample) for t in expected
    ]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)


def test_push_returns_whole_windows_and_keeps_the_rest() -> None:
    detector = TurnDetector(VadConfig(), ProbabilityIsAudioVad())
    assert detector.push(np.zeros(300, np.float32)).shape == (0, W)
    windows = detector.push(np.arange(1000, dtype=np.float32))
    assert windows.shape == (2, W)  # 1300 samples: two windows, 276 held
    np.testing.assert_array_equal(windows[0, 300:], np.arange(W - 300))
    tail = detector.tail_window()
    assert tail.shape == (1, W) and not tail[0, 1300 - 2 * W :].any()
    assert detector.tail_window().shape == (0, W)  # taken once


def test_more_probabilities_than_windows_is_an_error() -> None:
    detector = TurnDetector(VadConfig(), ProbabilityIsAudioVad())
    detector.push(np.zeros(W + 10, np.float32))
    with pytest.raises(ValueError, match="2 probabilities for 1 unscored"):
        detector.step([0.1, 0.2])
    assert detector.step([0.1]) == []


# ---------------------------------------------------------------- check points (TurnConfig)


def detector_with(**turn: Any) -> TurnDetector:
    return TurnDetector(VadConfig(), ProbabilityIsAudioVad(), 16000, TurnConfig(**turn))


def test_no_check_points_without_a_turn_config_or_with_plain_silence() -> None:
    audio = track((0, 5), (0.9, 20), (0.1, 40))
    for detector in (TurnDetector(VadConfig(), ProbabilityIsAudioVad()), detector_with()):
        events = detector.feed(audio)
        assert [type(e) for e in events] == [SpeechStarted, TurnEnded]


def test_preemptive_silence_pauses_then_ends_at_min_silence() -> None:
    # check_after 200 ms = 3200 samples: the 7th silent window (7 * 512 = 3584) reaches
    # it; rechecks each 100 ms (1600 samples) while the 500 ms of silence grows.
    detector = detector_with(preemptive=True, check_after_ms=200, recheck_ms=100)
    events = detector.feed(track((0, 5), (0.9, 20), (0.1, 40)))
    kinds = [type(e) for e in events]
    assert kinds[0] is SpeechStarted and kinds[-1] is TurnEnded
    pauses = [e for e in events if isinstance(e, TurnPaused)]
    assert [p.check for p in pauses] == list(range(len(pauses)))
    assert pauses[0].end_sample == 25 * W and pauses[0].decided_sample == 32 * W
    # heard silence 224, 320, 416 and 512 ms; silero closes at the window that *starts*
    # 500 ms into the silence (heard 544 ms)
    assert [p.decided_sample for p in pauses] == [32 * W, 35 * W, 38 * W, 41 * W]
    assert turns(events)[0].end_sample == 25 * W


def test_speech_after_a_pause_resumes_the_turn() -> None:
    detector = detector_with(preemptive=True, check_after_ms=200)
    events = detector.feed(track((0, 5), (0.9, 20), (0.1, 8), (0.9, 10), (0.1, 40)))
    kinds = [type(e) for e in events]
    assert kinds.count(TurnPaused) >= 2 and kinds.count(SpeechResumed) == 1
    resumed = next(e for e in events if isinstance(e, SpeechResumed))
    assert resumed.resumed_sample == 33 * W
    (turn,) = turns(events)
    assert (turn.start_sample, turn.end_sample) == (5 * W, 43 * W)  # one turn, both parts


def test_smart_turn_waits_for_max_silence_unless_ended() -> None:
    detector = detector_with(strategy="smart_turn", max_silence_ms=1000)
    events = detector.feed(track((0, 5), (0.9, 20), (0.1, 20)))  # 640 ms: not over
    assert not turns(events) and detector.in_turn
    paused = next(e for e in events if isinstance(e, TurnPaused))
    ended = detector.end_turn(paused)
    assert ended is not None and ended.end_sample == 25 * W
    assert not detector.in_turn
    assert detector.end_turn(paused) is None  # once only

    detector = detector_with(strategy="smart_turn", max_silence_ms=1000)
    (turn,) = turns(detector.feed(track((0, 5), (0.9, 20), (0.1, 40))))  # 1.28 s of silence
    assert turn.end_sample == 25 * W


def test_a_stale_pause_cannot_end_the_turn() -> None:
    detector = detector_with(strategy="smart_turn")
    events = detector.feed(track((0, 5), (0.9, 20), (0.1, 8), (0.9, 5)))
    paused = next(e for e in events if isinstance(e, TurnPaused))
    assert detector.end_turn(paused) is None  # speech came back after it
    assert detector.in_turn


def test_turn_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="strategy"):
        TurnConfig(strategy="guess")
    with pytest.raises(ConfigError, match="max_silence_ms"):
        TurnConfig(check_after_ms=300, max_silence_ms=200)
    with pytest.raises(ConfigError, match="threshold"):
        TurnConfig(threshold=1.5)
