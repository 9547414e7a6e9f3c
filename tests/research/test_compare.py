"""The comparison's figures against independently computed values: jiwer on the texts,
numpy on the turns' own latency records, the annotations' own rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from admin.models import Annotation
from admin.transcripts import normalise
from parley import db
from parley.config import Config
from research.compare import CompareError, compare
from research.sample_runs import TAGS, seed_runs
from research.stats import percentiles, ratio_differences_ci, wilson_interval

ITEMS = 400


@pytest.fixture
def seeded(store: Config) -> list[str]:
    runs = seed_runs(ITEMS).runs
    # Some items fail in the second run: they count as failed and leave the pairs.
    second = db.Run.get(db.Run.name == runs[1])
    failing = db.RunItem.select(db.RunItem.id).where(db.RunItem.run == second).limit(25)
    db.RunItem.update(status="failed", error="llm: boom").where(
        db.RunItem.id.in_(failing)
    ).execute()
    return runs


def per_item(run: str) -> dict[str, dict]:
    """Each item's figures, read the long way: the turn's JSON record and texts."""
    out = {}
    query = (
        db.RunItem.select(db.RunItem, db.Turn, db.DatasetItem)
        .join(db.Run)
        .switch(db.RunItem)
        .join(db.Turn)
        .switch(db.RunItem)
        .join(db.DatasetItem)
        .where(db.Run.name == run)
    )
    for row in query:
        out[row.item.key] = {
            "status": row.status,
            "latency": row.turn.latency,
            "reference": row.item.reference_transcript,
            "transcript": row.turn.transcript,
            "tags": row.item.tags,
            "turn": row.turn.id,
        }
    return out


def jiwer_counts(item: dict) -> int:
    jiwer = pytest.importorskip("jiwer")
    words = jiwer.process_words(normalise(item["reference"]), normalise(item["transcript"]))
    return words.substitutions + words.deletions + words.insertions


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def test_each_runs_figures_match_the_turns_and_jiwer(store: Config, seeded: list[str]):
    jiwer = pytest.importorskip("jiwer")
    result = compare(seeded)
    assert [s["run"] for s in result["summary"]] == seeded
    assert result["items_total"] == ITEMS
    for summary in result["summary"]:
        items = per_item(summary["run"])
        done = [i for i in items.values() if i["status"] == "done"]
        assert summary["done"] == len(done)
        assert summary["failed"] == ITEMS - len(done)
        refs = [normalise(i["reference"]) for i in done]
        heard = [normalise(i["transcript"]) for i in done]
        assert summary["wer"] == pytest.approx(jiwer.wer(refs, heard), abs=1e-6)
        assert summary["cer"] == pytest.approx(jiwer.cer(refs, heard), abs=1e-6)
        v2v = [i["latency"]["voice_to_voice_ms"] for i in done]
        assert summary["latency"]["voice_to_voice_ms"] == {
            "n": len(done),
            "p50": pytest.approx(nearest_rank(v2v, 50), abs=1e-3),
            "p90": pytest.approx(nearest_rank(v2v, 90), abs=1e-3),
            "p99": pytest.approx(nearest_rank(v2v, 99), abs=1e-3),
            "mean": pytest.approx(float(np.mean(v2v)), abs=1e-3),
        }
        stt = next(s for s in summary["stages"] if s["stage"] == "stt")
        transfer = [i["latency"]["stt_overhead_ms"] for i in done]
        assert stt["transfer"]["p90"] == pytest.approx(nearest_rank(transfer, 90), abs=1e-3)
        model = [i["latency"]["stt_model_ms"] for i in done]
        assert stt["model"]["p50"] == pytest.approx(nearest_rank(model, 50), abs=1e-3)
        # Annotation means over the run's done items, from the annotation rows.
        turns = {i["turn"] for i in done}
        scores = [
            a.overall_score
            for a in Annotation.select()
            if a.turn_id in turns and a.overall_score is not None
        ]
        assert summary["scores"]["overall_score"]["count"] == len(scores) > 0
        assert summary["scores"]["overall_score"]["mean"] == pytest.approx(np.mean(scores))


def test_paired_differences_wins_and_a_bootstrap_interval(store: Config, seeded: list[str]):
    result = compare(seeded[:2], tie_ms=10.0)
    paired = {p["metric"]: p for p in result["paired"]}
    a, b = per_item(seeded[0]), per_item(seeded[1])
    both = [k for k in a if a[k]["status"] == b[k]["status"] == "done"]
    va = np.array([a[k]["latency"]["voice_to_voice_ms"] for k in both])
    vb = np.array([b[k]["latency"]["voice_to_voice_ms"] for k in both])
    v2v = paired["voice_to_voice_ms"]
    assert v2v["n"] == len(both) == ITEMS - 25
    assert v2v["difference"] == pytest.approx(vb.mean() - va.mean(), abs=1e-3)
    diff = vb - va
    assert (v2v["a_better"], v2v["ties"], v2v["b_better"]) == (
        int((diff > 10).sum()),
        int((np.abs(diff) <= 10).sum()),
        int((diff < -10).sum()),
    )
    # The percentile bootstrap of a mean difference of ~375 items is close to the
    # normal interval, and holds the point estimate.
    low, high = v2v["ci95"]
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff))
    assert low < v2v["difference"] < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert compare(seeded[:2])["paired"] == result["paired"]  # seeded: reproducible

    wer = paired["wer"]
    rate = {
        name: sum(jiwer_counts(r[k]) for k in both)
        / sum(len(normalise(r[k]["reference"]).split()) for k in both)
        for name, r in (("a", a), ("b", b))
    }
    assert (wer["mean_a"], wer["mean_b"]) == (
        pytest.approx(rate["a"], abs=1e-6),
        pytest.approx(rate["b"], abs=1e-6),
    )
    assert wer["n"] == len(both)
    assert wer["a_better"] + wer["ties"] + wer["b_better"] == len(both)
    assert wer["ci95"][0] <= wer["difference"] <= wer["ci95"][1]


def test_tags_item_pages_and_bad_requests(store: Config, seeded: list[str]):
    a = per_item(seeded[0])
    tagged = sorted(k for k, i in a.items() if TAGS[0] in i["tags"])
    result = compare(seeded, tag=TAGS[0], item_offset=2, item_limit=3)
    assert result["items_total"] == len(tagged) > 5
    assert result["summary"][0]["done"] == len(tagged)
    assert [row["key"] for row in result["items"]] == tagged[2:5]
    for row in result["items"]:
        got = row["runs"][seeded[0]]
        assert got["transcript"] == a[row["key"]]["transcript"]
        assert got["turn_id"] == a[row["key"]]["turn"]
        assert row["reference_transcript"] == a[row["key"]]["reference"]
        assert set(row["runs"]) == set(seeded)
    assert TAGS[0] in result["tags"]

    with pytest.raises(CompareError, match="unknown run 'nope'"):
        compare([seeded[0], "nope"])
    with pytest.raises(CompareError, match="named twice"):
        compare([seeded[0], seeded[0]])
    other = db.Dataset.create(name="other")
    db.Run.create(name="elsewhere", dataset=other, pipeline="tiny")
    with pytest.raises(CompareError, match="different datasets"):
        compare([seeded[0], "elsewhere"])


def test_percentiles_and_the_bootstrap_on_known_numbers():
    assert percentiles([np.nan]) == {"n": 0}
    figures = percentiles([5.0, 1.0, 3.0, np.nan, 2.0, 4.0])
    assert figures == {"n": 5, "p50": 3.0, "p90": 5.0, "p99": 5.0, "mean": 3.0}
    ones = np.ones(50)
    same = ratio_differences_ci([(ones * 2, ones, ones * 3, ones)], resamples=200)
    assert same == [(1.0, 1.0)]  # no spread: every resample gives 3 - 2
    assert ratio_differences_ci([(ones[:0],) * 4]) == [(math.nan, math.nan)]


def test_wilson_interval_matches_published_values():
    """Newcombe (1998), Statistics in Medicine 17, table I, method 3 (Wilson score)."""
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson_interval(15, 148)
    assert (round(low, 4), round(high, 4)) == (0.0624, 0.1605)
    low, high = wilson_interval(0, 20)
    assert (low, round(high, 4)) == (0.0, 0.1611)
    low, high = wilson_interval(1, 29)
    assert (round(low, 4), round(high, 4)) == (0.0061, 0.1718)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_a_run_named_with_digits_is_found_by_its_name_and_ids_by_hash(store: Config):
    from research.compare_runs import find_runs

    dataset = db.Dataset.create(name="numbers")
    by_id = db.Run.create(id=123, name="baseline", dataset=dataset, pipeline="tiny")
    named = db.Run.create(id=200, name="123", dataset=dataset, pipeline="tiny")

    assert find_runs(["123"]) == [named]  # an exact name wins over the id 123
    assert find_runs(["#123"]) == [by_id]  # #ID is always the id
    assert find_runs([123]) == [by_id]  # an int (the admin's links) is an id
    assert find_runs(["200"]) == [named]  # no run is named "200": the id
    assert find_runs(["baseline", "123"]) == [by_id, named]
    for ref in ("#124", "#", "#x", "#123x", "124"):
        with pytest.raises(CompareError, match="unknown run"):
            find_runs([ref])
    with pytest.raises(CompareError, match="named twice"):
        find_runs(["#200", "123"])


def test_a_tag_no_item_has_is_an_error_not_empty_tables(store: Config):
    runs = seed_runs(12).runs
    with pytest.raises(CompareError) as info:
        compare(runs, tag="nosuch")
    message = str(info.value)
    assert "has the tag 'nosuch'" in message
    assert all(tag in message for tag in TAGS if tag in compare(runs)["tags"])
    assert compare(runs, tag=TAGS[0])["items_total"] > 0  # a known tag still works
