"""Annotation questions from the config ([annotation.questions.*]): which turns ask them,
the save rules on them, their figures on the accuracy page (checked against the
``krippendorff`` package and against counts made here), the export columns and the
progress counts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.app import create_app
from admin.auth import create_user
from admin.models import Annotation
from parley import db
from parley.config import Config, load_config
from tests.admin.conftest import (
    PASSWORD,
    T0,
    add_turn,
    client_for,
    post,
    same_store,
    scores,
    totals,
)

QUESTIONS = """
[annotation.questions.polite]
label = "Polite"
kind = "ordinal"
scale = [1, 3]
rubric = ["rude", "plain", "warm"]
stage = "llm"

[annotation.questions.helpful]
kind = "boolean"

[annotation.questions.topics]
kind = "categorical"
choices = ["home", "weather", "music"]
multiple = true

[annotation.questions.emotion]
kind = "categorical"
choices = ["neutral", "happy", "sad"]
stage = "emotion"
bind = "emotion.label"
pipelines = ["alpha"]

[annotation.questions.note]
kind = "text"
"""
ANNOTATORS = ("bob", "cy", "dee")


@pytest.fixture
def qapp(tmp_path: Path, config: Config) -> Iterator[Flask]:
    path = tmp_path / "questions.toml"
    path.write_text(QUESTIONS)
    app = create_app(
        load_config(path, env=same_store(config)),
        secret_key="test-secret-key-" + "x" * 32,
    )
    app.config["TESTING"] = True
    with db.database.connection_context():
        create_user("ada", PASSWORD, "admin")
        for name in ANNOTATORS:
            create_user(name, PASSWORD, "annotator")
    stored = ["happy", "happy", "sad", "neutral"]
    for i, label in enumerate(stored):
        add_turn(f"u{i}", created=T0 + dt.timedelta(minutes=i))
        with db.database.connection_context():
            db.Turn.update(outputs={"emotion": {"label": label}}).where(
                db.Turn.id == f"u{i}"
            ).execute()
    add_turn("plain", created=T0 + dt.timedelta(minutes=9))  # no stored emotion
    add_turn("b0", pipeline="beta", created=T0 + dt.timedelta(minutes=10))
    yield app
    db.database.close()


def _form(**answers: str | list[str]) -> dict[str, object]:
    base: dict[str, object] = {"polite": "2", "helpful": "yes", "topics": ["home"]}
    return {**scores(), **base, **answers}


def test_which_turns_ask_which_questions(qapp: Flask) -> None:
    ada = client_for(qapp, "ada")
    keys = lambda turn: [  # noqa: E731
        k
        for k in ("polite", "helpful", "topics", "emotion", "note")
        if f'data-key="{k}"' in ada.get(f"/turns/{turn}").text
    ]
    assert keys("u0") == ["polite", "helpful", "topics", "emotion", "note"]
    assert keys("plain") == ["polite", "helpful", "topics", "note"]  # nothing stored
    assert keys("b0") == ["polite", "helpful", "topics", "note"]  # another pipeline
    page = ada.get("/turns/u0").text
    # the question about the LLM sits under the LLM's score
    assert page.index('data-key="llm_score"') < page.index('data-key="polite"')
    assert page.index('data-key="polite"') < page.index('data-key="tts_score"')
    assert 'data-stored="happy"' in page and "warm" in page  # stored value, rubric


def test_the_save_rules_cover_configured_questions(qapp: Flask) -> None:
    bob = client_for(qapp, "bob")
    refused = post(bob, "/turns/u0/annotate", scores())
    assert refused.status_code == 422
    assert "answer or mark n/a: Polite, helpful, topics, emotion" in refused.text
    bad = post(bob, "/turns/u0/annotate", _form(emotion="furious"))
    assert bad.status_code == 422 and "not one of neutral, happy, sad" in bad.text
    with db.database.connection_context():
        assert Annotation.select().count() == 0  # nothing half-saved
    # what was sent comes back checked
    assert 'value="furious"' not in bad.text and 'value="2"\n      checked' in bad.text.replace(
        '" checked', '"\n      checked'
    )
    saved = post(bob, "/turns/u0/annotate", _form(emotion="sad", topics=["music", "home"]))
    assert saved.status_code == 302
    with db.database.connection_context():
        row = Annotation.get()
    assert row.done and row.answers == {
        "polite": 2,
        "helpful": True,
        "topics": ["home", "music"],
        "emotion": {"value": "sad", "stored": "happy"},
    }
    post(bob, "/turns/u1/annotate", _form(emotion="na", helpful="na", note="fine"))
    with db.database.connection_context():
        second = Annotation.get(Annotation.turn == "u1")
    assert second.not_applicable == ["helpful", "emotion"] and second.answers["note"] == "fine"


def _annotate_all(qapp: Flask) -> dict[str, list[list[str | None]]]:
    """Three annotators on four turns; returns the emotion and politeness tables
    (coders x units) as given, for the independent checks."""
    emotion = [["sad", "happy", "sad", "neutral"], ["happy", "happy", "sad", None],
               ["sad", "happy", "neutral", "neutral"]]  # fmt: skip
    polite = [["1", "2", "3", "3"], ["1", "2", "3", None], ["2", "2", "3", "2"]]
    helpful = [["yes", "no", "yes", "yes"], ["yes", "no", "na", None], ["no", "no", "yes", "yes"]]
    for c, name in enumerate(ANNOTATORS):
        client = client_for(qapp, name)
        for u in range(4):
            if emotion[c][u] is None:
                continue
            form = _form(
                emotion=emotion[c][u], polite=polite[c][u], helpful=helpful[c][u],
                topics=["home", "music"] if u % 2 else ["weather"],
            )  # fmt: skip
            assert post(client, f"/turns/u{u}/annotate", form).status_code == 302
    return {"emotion": emotion, "polite": polite, "helpful": helpful}  # type: ignore[dict-item]


def test_figures_of_configured_questions(qapp: Flask) -> None:
    given = _annotate_all(qapp)
    ada = client_for(qapp, "ada")
    figures = ada.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]["questions"]

    emotion = figures["emotion"]
    table = np.array([[np.nan if v is None else ["neutral", "happy", "sad"].index(v) for v in row]
                      for row in given["emotion"]], dtype=float)  # fmt: skip
    assert emotion["alpha_level"] == "nominal"
    assert emotion["alpha"] == pytest.approx(
        krippendorff.alpha(table, value_domain=[0, 1, 2], level_of_measurement="nominal")
    )
    answers = [v for row in given["emotion"] for v in row if v is not None]
    assert emotion["distribution"] == {k: answers.count(k) for k in ("neutral", "happy", "sad")}
    stored = ["happy", "happy", "sad", "neutral"]
    pairs = [(stored[u], row[u]) for row in given["emotion"] for u in range(4) if row[u]]
    assert emotion["accuracy"] == pytest.approx(sum(s == a for s, a in pairs) / len(pairs))
    labels = ["neutral", "happy", "sad"]
    counts = emotion["confusion"]["counts"]
    for s, label in enumerate(labels):
        for a, answer in enumerate(labels):
            assert counts[s][a] == pairs.count((label, answer)), (label, answer)
    assert sum(counts[3]) == 0  # no stored value outside the labels

    polite = figures["polite"]
    values = np.array([[np.nan if v is None else int(v) for v in row] for row in given["polite"]])
    assert polite["alpha_level"] == "ordinal"
    assert polite["alpha"] == pytest.approx(
        krippendorff.alpha(values, value_domain=[1, 2, 3], level_of_measurement="ordinal")
    )
    assert polite["mean"] == pytest.approx(np.nanmean(values))
    assert polite["distribution"] == {"1": 2, "2": 5, "3": 4}

    helpful = figures["helpful"]
    yes_no = [v for row in given["helpful"] for v in row if v in ("yes", "no")]
    assert helpful["na"] == 1 and helpful["rated"] == len(yes_no)
    assert helpful["mean"] == pytest.approx(yes_no.count("yes") / len(yes_no))

    topics = figures["topics"]  # several labels: counted, no alpha
    assert topics["distribution"] == {"home": 5, "weather": 6, "music": 5}
    assert topics["rated"] == 11 and topics["alpha"] is None and topics["alpha_level"] is None
    page = ada.get("/accuracy/").text
    assert 'data-question="emotion"' in page and 'data-confusion="emotion"' in page


def test_exports_and_progress_count_configured_questions(qapp: Flask) -> None:
    _annotate_all(qapp)
    ada = client_for(qapp, "ada")
    rows = list(csv.DictReader(io.StringIO(ada.get("/export/annotations.csv").text)))
    assert len(rows) == 11
    u0 = next(r for r in rows if r["turn"] == "u0" and r["user"] == "bob")
    assert (u0["q_polite"], u0["q_helpful"], u0["q_topics"]) == ("1", "True", '["weather"]')
    assert (u0["q_emotion"], u0["q_emotion_stored"], u0["q_emotion_correct"]) == (
        "sad",
        "happy",
        "False",
    )
    cy_u2 = next(r for r in rows if r["turn"] == "u2" and r["user"] == "cy")
    assert cy_u2["q_helpful"] == "n/a" and cy_u2["not_applicable"] == '["helpful"]'
    figures = totals(ada.get("/progress/").text)
    assert figures["progress.question.helpful.answered"] == 10
    assert figures["progress.question.helpful.na"] == 1
    assert figures["progress.question.emotion.answered"] == 11
    assert figures["progress.question.note.answered"] == 0
    mine = totals(client_for(qapp, "cy").get("/progress/").text)
    assert (
        mine["progress.question.helpful.na"] == 1
        and mine["progress.question.emotion.answered"] == 3
    )


def test_existing_annotations_keep_working_when_questions_are_added(
    app: Flask, admin_client: FlaskClient, tmp_path: Path, config: Config
) -> None:
    """Annotations saved before a question existed stay done, and their figures stay."""
    add_turn("t1")
    post(admin_client, "/turns/t1/annotate", scores(overall_score="4"))
    path = tmp_path / "questions.toml"
    path.write_text(QUESTIONS)
    later = create_app(load_config(path, env=same_store(config)), secret_key="k" * 40)
    client = client_for(later, "ada")
    summary = client.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]
    assert summary["mean"]["overall_score"] == 4.0 and summary["questions"]["polite"]["rated"] == 0
    assert totals(client.get("/").text)["home.mine"] == 1  # still done
    page = client.get("/turns/t1").text
    assert 'data-key="polite"' in page  # asked now, unanswered
