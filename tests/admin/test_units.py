"""The pure parts: agreement, edit counts, percentiles, charts, timelines, filters."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from admin.agreement import alpha_from_pairs, ordinal_alpha
from admin.charts import Bar, Segment, nice_step, stacked_bars, waterfall
from admin.filters import TurnFilters
from admin.latency_cache import METRICS, pack
from admin.latency_stats import _summarise
from admin.timeline import latency_bars
from admin.transcripts import edit_counts
from tests.admin.test_benchmarks import KRIPPENDORFF, nearest_rank


def test_ordinal_alpha_on_the_published_example() -> None:
    assert round(ordinal_alpha(KRIPPENDORFF), 3) == 0.815


def test_alpha_edge_cases() -> None:
    assert ordinal_alpha([[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert math.isnan(ordinal_alpha([[1, 2, 3], [None, None, None]]))  # nothing pairable
    assert math.isnan(ordinal_alpha([[2, 2], [2, 2]]))  # one value: undefined
    assert ordinal_alpha([[0, 5, 0, 5], [5, 0, 5, 0]]) < 0  # systematic disagreement
    units = np.array(["a", "a", "b", "b", "c"])
    scores = np.array([1.0, 1.0, 4.0, 4.0, np.nan])
    assert alpha_from_pairs(units, scores, 6) == pytest.approx(1.0)


def test_edit_counts_normalise_case_and_punctuation() -> None:
    counts = edit_counts("Turn ON the lamp!", "turn of the lamp, please")
    assert counts is not None
    assert (counts.word_errors, counts.word_count) == (2, 4)
    assert edit_counts("Same words.", "same words") == edit_counts("same words", "same words")
    assert edit_counts("...", "anything") is None  # no reference to score against


def test_percentiles_are_nearest_rank_and_skip_missing() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(3, 1, size=(333, len(METRICS)))
    values[rng.random(values.shape) < 0.2] = np.nan
    stats = _summarise(values)
    for j, name in enumerate(METRICS):
        column = [v for v in values[:, j].tolist() if not math.isnan(v)]
        assert stats[name].count == len(column)
        assert stats[name].p90 == nearest_rank(column, 90)
        assert stats[name].mean == pytest.approx(sum(column) / len(column))
    assert _summarise(np.full((3, len(METRICS)), np.nan))["stt_ms"].count == 0


def test_pack_keeps_known_metrics_and_marks_missing() -> None:
    numbers = np.frombuffer(pack({"stt_ms": 12.5, "other": 1.0, "llm_ms": "x"}), dtype="<f8")
    assert numbers[METRICS.index("stt_ms")] == 12.5
    assert np.isnan(numbers[METRICS.index("llm_ms")]) and numbers.size == len(METRICS)


def test_charts_escape_labels_and_scale() -> None:
    svg = stacked_bars([("<b>x</b>", [Segment("model", 10.0, "m"), Segment("rest", 5.0, "o")])])
    assert "<b>" not in svg and "&lt;b&gt;" in svg and svg.count("<rect") == 4  # 2 + legend
    assert nice_step(1000) == 200 and nice_step(7) == 2 and nice_step(0) == 1.0
    assert waterfall([]) == ""
    assert waterfall([Bar("a", -5, 10, "x"), Bar("b", 0, 3, "y", indent=1)]).count("<rect") == 2


def test_latency_bars_follow_the_critical_path() -> None:
    record = {
        "endpointing_ms": 500.0,
        "stt_done_ms": 40.0,
        "stt_model_ms": 30.0,
        "first_sentence_ms": 100.0,
        "llm_model_ms": 50.0,
        "llm_first_token_ms": 70.0,
        "tts_first_audio_ms": 120.0,
        "first_audio_sent_ms": 121.0,
        "turn_total_ms": 900.0,
        "voice_to_voice_ms": 660.0,
    }
    bars = latency_bars(record)
    labels = [b.label for b in bars]
    assert labels[0] == "end of speech → VAD decision" and bars[0].start == -500.0
    stt = bars[labels.index("speech-to-text")]
    assert (stt.start, stt.end) == (0.0, 40.0)
    llm = bars[labels.index("LLM to first sentence")]
    assert (llm.start, llm.end) == (40.0, 100.0)
    v2v = bars[labels.index("voice-to-voice (edge clock)")]
    assert (v2v.start, v2v.end) == (-500.0, 160.0)
    assert latency_bars({}) == []


def test_filters_round_trip_and_ignore_junk() -> None:
    args = {
        "pipeline": "alpha",
        "from": "2026-03-01",
        "to": "2026-03-02",
        "annotated": "no",
        "q": "lamp",
        "group": "3",
        "status": "done",
    }
    parsed = TurnFilters.parse(args)
    assert parsed.args() == args
    assert parsed.datetimes() == (dt.datetime(2026, 3, 1), dt.datetime(2026, 3, 3))
    junk = TurnFilters.parse({"from": "yesterday", "annotated": "maybe", "group": "x"})
    assert not junk.active


@pytest.mark.parametrize("level", ["ordinal", "nominal"])
def test_alpha_equals_the_krippendorff_package_on_random_data(level: str) -> None:
    """The admin's alpha (from coincidence matrices) against an independent
    implementation, on data with missing values and uneven coders per unit."""
    krippendorff = pytest.importorskip("krippendorff")
    from admin.agreement import alpha_from_coincidences, coincidences

    rng = np.random.default_rng(3)
    for trial in range(20):
        coders, units, values = rng.integers(2, 6), rng.integers(5, 60), rng.integers(2, 7)
        base = rng.integers(0, values, size=units)
        data = np.where(
            rng.random((coders, units)) < 0.7, base, rng.integers(0, values, (coders, units))
        )
        data = np.where(rng.random((coders, units)) < 0.25, np.nan, data.astype(float))
        counts = np.stack([(data == v).sum(axis=0) for v in range(values)], axis=1)
        ours = alpha_from_coincidences(coincidences(counts, int(values)), level)
        theirs = krippendorff.alpha(
            value_counts=counts, value_domain=list(range(values)), level_of_measurement=level
        )
        if math.isnan(ours):
            assert math.isnan(theirs) or (counts.sum(axis=1) >= 2).sum() == 0, trial
        else:
            assert ours == pytest.approx(theirs, abs=1e-9), (trial, level)
