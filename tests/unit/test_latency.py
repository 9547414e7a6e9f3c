"""TurnLatency.record(): every derived figure from hand-set perf_counter values."""

from __future__ import annotations

import pytest

from server import latency as latency_module
from server.latency import MARKS, TurnLatency

T0 = 1000.0  # the VAD decision, on a made-up perf_counter clock (seconds)


def full_turn() -> TurnLatency:
    turn = TurnLatency(decision_at=T0, endpointing_s=0.5)
    turn.marks = {
        "stt_done": T0 + 0.200,
        "llm_first_token": T0 + 0.260,
        "first_sentence": T0 + 0.450,
        "tts_first_audio": T0 + 0.600,
        "first_audio_sent": T0 + 0.605,
    }
    turn.model = {"stt": 0.150, "llm": 0.200, "tts": 0.120}
    turn.done_at = T0 + 2.0
    turn.speech_end_edge = 50.0
    turn.first_played_edge = 51.1
    return turn


def test_marks_are_milliseconds_since_the_decision() -> None:
    out = full_turn().record()
    assert out["endpointing_ms"] == pytest.approx(500.0)
    assert out["stt_done_ms"] == pytest.approx(200.0)
    assert out["llm_first_token_ms"] == pytest.approx(260.0)
    assert out["first_sentence_ms"] == pytest.approx(450.0)
    assert out["tts_first_audio_ms"] == pytest.approx(600.0)
    assert out["first_audio_sent_ms"] == pytest.approx(605.0)
    assert out["turn_total_ms"] == pytest.approx(2000.0)


def test_stage_totals_models_and_overheads() -> None:
    out = full_turn().record()
    expected = {
        # stage: (total = gap since the previous stage's end, model, overhead)
        "stt": (200.0, 150.0, 50.0),
        "llm": (250.0, 200.0, 50.0),
        "tts": (150.0, 120.0, 30.0),
        "send": (5.0, 0.0, 5.0),
    }
    for stage, (total, model, overhead) in expected.items():
        assert out[f"{stage}_ms"] == pytest.approx(total), stage
        assert out[f"{stage}_model_ms"] == pytest.approx(model), stage
        assert out[f"{stage}_overhead_ms"] == pytest.approx(overhead), stage


def test_overhead_adds_up_exactly() -> None:
    out = full_turn().record()
    stages = ("stt", "llm", "tts", "send")
    assert out["overhead_ms"] == pytest.approx(135.0)
    assert out["overhead_ms"] == pytest.approx(sum(out[f"{s}_overhead_ms"] for s in stages))
    models = sum(out[f"{s}_model_ms"] for s in stages)
    assert out["overhead_ms"] == pytest.approx(out["first_audio_sent_ms"] - models)
    # The stage totals tile the path from decision to first audio sent, no gaps.
    assert sum(out[f"{s}_ms"] for s in stages) == pytest.approx(out["first_audio_sent_ms"])


def test_voice_to_voice_uses_edge_times_only() -> None:
    turn = full_turn()
    out = turn.record()
    assert out["speech_end_edge_s"] == 50.0
    assert out["first_played_edge_s"] == 51.1
    assert out["voice_to_voice_ms"] == pytest.approx(1100.0)
    assert turn.voice_to_voice_ms == pytest.approx(1100.0)


def test_voice_to_voice_needs_both_edge_times() -> None:
    turn = full_turn()
    turn.first_played_edge = None
    out = turn.record()
    assert "voice_to_voice_ms" not in out
    assert "first_played_edge_s" not in out
    assert out["speech_end_edge_s"] == 50.0
    assert turn.voice_to_voice_ms is None


def test_missing_mark_omits_that_stage_and_every_later_one() -> None:
    turn = full_turn()
    del turn.marks["first_sentence"]
    del turn.marks["tts_first_audio"]
    del turn.marks["first_audio_sent"]
    out = turn.record()
    assert out["stt_ms"] == pytest.approx(200.0)
    assert out["stt_overhead_ms"] == pytest.approx(50.0)
    assert out["llm_first_token_ms"] == pytest.approx(260.0)
    for stage in ("llm", "tts", "send"):
        assert f"{stage}_ms" not in out
        assert f"{stage}_model_ms" not in out
        assert f"{stage}_overhead_ms" not in out
    assert "first_sentence_ms" not in out
    assert "overhead_ms" not in out  # only a turn that reached the speaker has one


def test_failed_stt_gives_only_endpointing_and_total() -> None:
    turn = TurnLatency(decision_at=T0, endpointing_s=0.25, done_at=T0 + 0.3)
    assert turn.record() == {"endpointing_ms": 250.0, "turn_total_ms": pytest.approx(300.0)}


def test_no_done_no_total() -> None:
    turn = full_turn()
    turn.done_at = None
    assert "turn_total_ms" not in turn.record()


def test_mark_and_model_time_keep_the_first_value(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [T0]
    monkeypatch.setattr(latency_module.time, "perf_counter", lambda: now[0])
    turn = TurnLatency(decision_at=T0)
    now[0] = T0 + 0.1
    turn.mark("stt_done")
    now[0] = T0 + 0.2
    turn.mark("stt_done")  # ignored: already marked
    turn.model_time("stt", 0.05)
    turn.model_time("stt", 9.0)  # ignored
    now[0] = T0 + 0.3
    turn.done()
    now[0] = T0 + 0.4
    turn.done()  # ignored: done once
    out = turn.record()
    assert out["stt_done_ms"] == pytest.approx(100.0)
    assert out["stt_model_ms"] == pytest.approx(50.0)
    assert out["stt_overhead_ms"] == pytest.approx(50.0)
    assert out["turn_total_ms"] == pytest.approx(300.0)


def test_marks_list_is_the_critical_path_in_order() -> None:
    assert MARKS == (
        "stt_done",
        "llm_first_token",
        "first_sentence",
        "tts_first_audio",
        "first_audio_sent",
    )
