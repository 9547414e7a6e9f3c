"""The benchmark pages' numbers equal numbers computed here, independently, from the
seeded rows: latency percentiles, mean scores, WER/CER (jiwer) and Krippendorff's alpha
(the published example, and a direct pairwise computation)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import statistics
import string

import jiwer
import pytest
from flask.testing import FlaskClient

from admin.models import Annotation, GroupAnnotation, TurnGroup, User
from parley import db
from tests.admin.conftest import T0, add_turn, scores

METRICS = ("stt_ms", "stt_model_ms", "llm_overhead_ms", "overhead_ms", "voice_to_voice_ms")
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four
# observers, twelve units, values 1-5, missing data. Ordinal alpha = 0.815.
KRIPPENDORFF = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _seed_latency() -> dict[str, list[dict[str, float]]]:
    rng = random.Random(5)
    records: dict[str, list[dict[str, float]]] = {"alpha": [], "beta": []}
    for i in range(120):
        pipeline = "alpha" if i % 3 else "beta"
        record = {m: round(rng.lognormvariate(3, 0.8), 3) for m in METRICS}
        if i % 7 == 0:
            del record["voice_to_voice_ms"]  # not every edge reports playback
        add_turn(
            f"t{i:03d}", pipeline=pipeline, latency=record, created=T0 + dt.timedelta(minutes=i)
        )
        records[pipeline].append(record)
    add_turn("failed", status="failed", latency={"stt_ms": 99999.0})  # not a done turn
    add_turn("running", status="running", latency={})
    return records


def test_latency_summary_equals_independent_figures(admin_client: FlaskClient) -> None:
    records = _seed_latency()
    summary = admin_client.get("/latency/summary.json").get_json()
    assert summary["turns"] == 120
    records["all pipelines"] = records["alpha"] + records["beta"]
    for pipeline, rows in records.items():
        for metric in METRICS:
            values = [r[metric] for r in rows if metric in r]
            got = summary["pipelines"][pipeline][metric]
            assert got["count"] == len(values)
            assert got["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
            for p in (50, 90, 99):
                assert got[f"p{p}"] == nearest_rank(values, p), (pipeline, metric, p)
    page = admin_client.get("/latency/").text
    alpha_stt = [r["stt_ms"] for r in records["alpha"]]
    assert f"{nearest_rank(alpha_stt, 90):,.1f}" in page
    assert "<svg" in page and "voice-to-voice" in page


def test_latency_filters_by_pipeline_date_and_status(admin_client: FlaskClient) -> None:
    records = _seed_latency()
    beta = admin_client.get("/latency/summary.json?pipeline=beta").get_json()
    assert list(beta["pipelines"]) == ["beta"]
    assert beta["turns"] == len(records["beta"])
    day = admin_client.get(f"/latency/summary.json?from={T0.date()}&to={T0.date()}").get_json()
    assert day["turns"] == sum(
        1 for i in range(120) if (T0 + dt.timedelta(minutes=i)).date() == T0.date()
    )
    failed = admin_client.get("/latency/summary.json?status=failed").get_json()
    assert failed["pipelines"]["alpha"]["stt_ms"]["count"] == 1


def test_latency_cache_follows_new_changed_and_deleted_turns(admin_client: FlaskClient) -> None:
    recent = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    add_turn("a", latency={"stt_ms": 10.0}, created=recent)
    add_turn("b", latency={"stt_ms": 30.0}, created=recent)
    assert admin_client.get("/latency/summary.json").get_json()["pipelines"]["alpha"]["stt_ms"][
        "mean"
    ] == pytest.approx(20.0)
    with db.database.connection_context():
        db.Turn.update(latency={"stt_ms": 50.0, "voice_to_voice_ms": 700.0}).where(
            db.Turn.id == "a"
        ).execute()  # a late figure merged in, as the store does
        db.Turn.delete().where(db.Turn.id == "b").execute()
    add_turn("c", latency={"stt_ms": 20.0}, created=recent)
    stats = admin_client.get("/latency/summary.json").get_json()["pipelines"]["alpha"]
    assert stats["stt_ms"]["count"] == 2 and stats["stt_ms"]["mean"] == pytest.approx(35.0)
    assert stats["voice_to_voice_ms"]["p50"] == 700.0


def _normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def _annotate(turn: str, user: str, pipeline: str = "alpha", **fields: object) -> None:
    with db.database.connection_context():
        Annotation.create(turn=turn, user=User.get(name=user), pipeline=pipeline, **fields)


def test_wer_and_cer_equal_jiwer_on_the_corrected_transcripts(
    bob: FlaskClient, cy: FlaskClient, admin_client: FlaskClient
) -> None:
    heard = {"t1": "Turn of the lamp please.", "t2": "what's the whether", "t3": "set a timer"}
    said = {"t1": "turn on the lamp", "t2": "What's the weather?", "t3": "set a timer"}
    for turn, text in heard.items():
        add_turn(turn, transcript=text, pipeline="alpha" if turn != "t3" else "beta")
    from tests.admin.conftest import post

    for client in (bob, cy):  # through the form, as annotators do
        for turn in heard:
            form = scores(corrected_transcript=said[turn])
            if _normalise(said[turn]) == _normalise(heard[turn]):
                form["transcript_state"] = "confirmed"  # heard right: a reference too
            post(client, f"/turns/{turn}/annotate", form)
    post(cy, "/turns/t3/annotate", scores(corrected_transcript="set a timer now"))  # cy revises
    summary = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]
    refs = [_normalise(said["t1"]), _normalise(said["t2"])] * 2
    hyps = [_normalise(heard["t1"]), _normalise(heard["t2"])] * 2
    assert summary["alpha"]["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    assert summary["alpha"]["cer"] == pytest.approx(jiwer.cer(refs, hyps))
    assert summary["alpha"]["corrected"] == 4
    # t1 by hand: "turn on the lamp" -> "turn of the lamp please": 1 substitution + 1
    # insertion over 4 words
    assert jiwer.wer(refs[0], hyps[0]) == 0.5
    beta_refs, beta_hyps = ["set a timer", "set a timer now"], ["set a timer", "set a timer"]
    assert summary["beta"]["wer"] == pytest.approx(jiwer.wer(beta_refs, beta_hyps))
    assert summary["beta"]["wer"] == pytest.approx(1 / 7)  # one word missing of 3 + 4
    everything = jiwer.wer(refs + beta_refs, hyps + beta_hyps)
    assert summary["all pipelines"]["wer"] == pytest.approx(everything)


def _pairwise_ordinal_alpha(table: list[list[int | None]]) -> float:
    """Alpha straight from the definition: observed and expected disagreement over all
    pairable values, ordinal distance from the value frequencies."""
    columns = [[row[u] for row in table] for u in range(len(table[0]))]
    units = [[v for v in values if v is not None] for values in columns]
    units = [values for values in units if len(values) > 1]
    pooled = [v for values in units for v in values]
    n = len(pooled)
    freq = {v: pooled.count(v) for v in set(pooled)}

    def delta(c: int, k: int) -> float:
        low, high = min(c, k), max(c, k)
        between = sum(f for v, f in freq.items() if low <= v <= high)
        return 0.0 if c == k else (between - (freq[c] + freq[k]) / 2) ** 2

    observed = (
        sum(
            sum(delta(a, b) for a, b in itertools.permutations(values, 2)) / (len(values) - 1)
            for values in units
        )
        / n
    )
    expected = sum(delta(a, b) for a, b in itertools.permutations(pooled, 2)) / (n * (n - 1))
    return 1 - observed / expected


def test_alpha_and_means_equal_the_published_example_and_a_direct_computation(
    admin_client: FlaskClient,
) -> None:
    names = ["ada", "bob", "cy", "dee"]
    with db.database.connection_context():
        from admin.auth import create_user

        create_user("dee", "correct horse battery", "annotator")
    for u in range(12):
        add_turn(f"u{u:02d}")
        for coder, name in enumerate(names):
            value = KRIPPENDORFF[coder][u]
            if value is not None:  # the LLM score is the same data shifted: same alpha
                _annotate(f"u{u:02d}", name, stt_score=value, llm_score=value - 1)
    result = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]
    assert round(result["alpha"]["stt_score"], 3) == 0.815
    assert result["alpha"]["stt_score"] == pytest.approx(_pairwise_ordinal_alpha(KRIPPENDORFF))
    assert result["alpha"]["llm_score"] == pytest.approx(result["alpha"]["stt_score"])
    assert result["alpha"]["tts_score"] is None  # nobody scored TTS
    values = [v for row in KRIPPENDORFF for v in row if v is not None]
    assert result["mean"]["stt_score"] == pytest.approx(statistics.fmean(values))
    assert result["rated"]["stt_score"] == len(values) == 41
    assert result["annotations"] == 41 and result["turns"] == 12
    page = admin_client.get("/accuracy/").text
    assert "0.815" in page


def test_perfect_agreement_is_one_and_means_are_per_pipeline(admin_client: FlaskClient) -> None:
    for i in range(6):
        pipeline = "alpha" if i < 3 else "beta"
        add_turn(f"t{i}", pipeline=pipeline)
        for name in ("bob", "cy"):
            _annotate(f"t{i}", name, pipeline=pipeline, overall_score=i % 6, tts_score=3)
    result = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]
    assert result["alpha"]["alpha"]["overall_score"] == pytest.approx(1.0)
    assert result["alpha"]["mean"]["overall_score"] == pytest.approx(1.0)  # 0, 1, 2
    assert result["beta"]["mean"]["overall_score"] == pytest.approx(4.0)  # 3, 4, 5
    assert result["all pipelines"]["mean"]["overall_score"] == pytest.approx(2.5)
    assert result["alpha"]["alpha"]["tts_score"] is None  # one value only: undefined


def test_accuracy_page_changes_when_an_annotation_is_saved(admin_client: FlaskClient) -> None:
    add_turn("t1")
    from tests.admin.conftest import post

    assert admin_client.get("/accuracy/summary.json").get_json()["pipelines"] == {}
    post(admin_client, "/turns/t1/annotate", scores(stt_score="5", overall_score="2"))
    first = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]
    assert first["mean"]["overall_score"] == 2.0
    post(admin_client, "/turns/t1/annotate", scores(stt_score="5", overall_score="4"))
    second = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]
    assert second["mean"]["overall_score"] == 4.0 and second["annotations"] == 1
    with db.database.connection_context():  # changed behind the admin's back
        Annotation.update(overall_score=1, updated_at=dt.datetime(2030, 1, 1)).execute()
    third = admin_client.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]
    assert third["mean"]["overall_score"] == 1.0


def test_group_summary(admin_client: FlaskClient) -> None:
    for i in range(4):
        add_turn(f"t{i}", conversation="c1", position=i)
    with db.database.connection_context():
        first, second = TurnGroup.create(name="one"), TurnGroup.create(name="two")
        for group, scores in ((first, {"bob": 4, "cy": 4}), (second, {"bob": 1, "cy": 2})):
            for name, score in scores.items():
                GroupAnnotation.create(group=group, user=User.get(name=name), score=score)
        TurnGroup.create(name="unrated")
    groups = admin_client.get("/accuracy/summary.json").get_json()["groups"]
    assert groups["groups"] == 3 and groups["rated_groups"] == 2 and groups["ratings"] == 4
    assert groups["mean_score"] == pytest.approx(statistics.fmean([4, 4, 1, 2]))
    assert groups["alpha"] == pytest.approx(_pairwise_ordinal_alpha([[4, 1], [4, 2]]))


def test_old_turns_edited_by_hand_need_a_rebuild(
    admin_client: FlaskClient, bob: FlaskClient
) -> None:
    add_turn("old", latency={"stt_ms": 10.0}, created=T0)  # long before the recheck window
    assert (
        admin_client.get("/latency/summary.json").get_json()["pipelines"]["alpha"]["stt_ms"]["mean"]
        == 10.0
    )
    with db.database.connection_context():
        db.Turn.update(latency={"stt_ms": 90.0}).where(db.Turn.id == "old").execute()
    from tests.admin.conftest import post

    assert post(bob, "/latency/rebuild").status_code == 403
    assert post(admin_client, "/latency/rebuild").status_code == 302
    stats = admin_client.get("/latency/summary.json").get_json()["pipelines"]["alpha"]
    assert stats["stt_ms"]["mean"] == 90.0
