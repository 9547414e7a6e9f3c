"""`parley bench` figures: nearest-rank percentiles and the per-stage summary."""

from __future__ import annotations

import pytest

from parley.commands.bench import STAGES, TARGET, percentiles, summarise


def test_empty_input_gives_nothing() -> None:
    assert percentiles([]) == {}


def test_single_value() -> None:
    assert percentiles([4.0]) == {"p50": 4.0, "p90": 4.0, "p99": 4.0, "mean": 4.0, "max": 4.0}


def test_odd_count_is_order_independent() -> None:
    # Nearest rank: the ceil(p/100 * n)-th smallest value. n = 9: p50 -> 5th, p90 -> 9th.
    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0]
    assert percentiles(values) == {"p50": 5.0, "p90": 9.0, "p99": 9.0, "mean": 5.0, "max": 9.0}


def test_p99_of_two_hundred_values() -> None:
    # n = 200: p50 -> 100th, p90 -> 180th, p99 -> 198th smallest.
    values = [float(v) for v in range(200, 0, -1)]
    out = percentiles(values)
    assert (out["p50"], out["p90"], out["p99"]) == (100.0, 180.0, 198.0)
    assert out["max"] == 200.0
    assert out["mean"] == 100.5


def test_figures_are_rounded_to_microseconds() -> None:
    out = percentiles([1.23456789, 2.0, 3.0])
    assert out["p50"] == 2.0
    assert out["mean"] == 2.078  # (6.23456789 / 3) rounded to 3 places
    assert percentiles([0.1234567])["max"] == 0.123


@pytest.mark.parametrize(
    "n, expected",
    [
        (10, {"p50": 5.0, "p90": 9.0, "p99": 10.0}),
        (100, {"p50": 50.0, "p90": 90.0, "p99": 99.0}),
    ],
)
def test_nearest_rank_when_the_rank_is_a_whole_number(n: int, expected: dict[str, float]) -> None:
    out = percentiles([float(v) for v in range(1, n + 1)])
    assert {k: out[k] for k in expected} == expected


def record(stt: float, llm: float, tts: float, send: float, model: float = 1.0) -> dict[str, float]:
    """A complete latency record: each stage's total, with ``model`` ms of model time."""
    out: dict[str, float] = {}
    for stage, total in zip(STAGES, (stt, llm, tts, send), strict=True):
        stage_model = 0.0 if stage == "send" else model
        out[f"{stage}_ms"] = total
        out[f"{stage}_model_ms"] = stage_model
        out[f"{stage}_overhead_ms"] = total - stage_model
    out["first_audio_sent_ms"] = stt + llm + tts + send
    out["overhead_ms"] = sum(out[f"{s}_overhead_ms"] for s in STAGES)
    return out


def test_summarise_skips_incomplete_turns_and_splits_stages() -> None:
    records = [
        record(3.0, 4.0, 2.0, 0.5),
        record(5.0, 4.0, 2.0, 0.5),
        record(4.0, 6.0, 3.0, 1.5),
        {"endpointing_ms": 500.0, "stt_ms": 90.0},  # failed turn: no first audio
    ]
    out = summarise(records)
    assert out["turns"] == 3
    assert out["stages"]["stt"]["total"]["p50"] == 4.0
    assert out["stages"]["stt"]["total"]["max"] == 5.0
    assert out["stages"]["llm"]["model"] == {
        "p50": 1.0,
        "p90": 1.0,
        "p99": 1.0,
        "mean": 1.0,
        "max": 1.0,
    }
    assert out["stages"]["tts"]["overhead"]["max"] == 2.0
    assert out["stages"]["send"]["model"]["max"] == 0.0
    assert out["stages"]["send"]["overhead"]["p50"] == 0.5
    # first audio: 9.5, 11.5, 14.5; overhead = first audio - 3 ms of model time
    assert out["decision_to_first_audio_ms"]["p50"] == 11.5
    assert out["overhead_ms"]["p50"] == 8.5
    assert out["overhead_ms"]["max"] == 11.5
    assert out["target"] == TARGET
    assert out["meets_target"] is False


def test_meets_target_when_overhead_is_small() -> None:
    out = summarise([record(1.5, 1.5, 1.5, 0.2) for _ in range(5)])
    assert out["overhead_ms"]["p99"] == pytest.approx(1.7)
    assert out["meets_target"] is True


def test_p99_over_target_misses_even_with_a_good_p50() -> None:
    records = [record(1.5, 1.5, 1.5, 0.2) for _ in range(9)] + [record(30.0, 1.5, 1.5, 0.2)]
    out = summarise(records)
    assert out["overhead_ms"]["p50"] < TARGET["overhead_p50_ms"]
    assert out["overhead_ms"]["p99"] >= TARGET["overhead_p99_ms"]
    assert out["meets_target"] is False


def test_no_complete_turns() -> None:
    out = summarise([{"endpointing_ms": 500.0}])
    assert out["turns"] == 0
    assert out["overhead_ms"] == {}
    assert out["decision_to_first_audio_ms"] == {}
    assert out["stages"]["stt"] == {"total": {}, "model": {}, "overhead": {}}
    assert out["meets_target"] is False
