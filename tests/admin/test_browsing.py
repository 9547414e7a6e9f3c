"""Browsing: turn filters and search, exports equal to the screen, the turn page, the
queue and progress, groups, traces."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.models import Annotation, GroupAnnotation, TurnGroup, TurnGroupMember, User
from parley import db
from tests.admin.conftest import T0, add_turn, post, scores, text, totals


def _count(client: FlaskClient, query: str) -> int:
    page = client.get(f"/turns/?{query}").text
    match = re.search(r'data-total="turns.total">([\d,]+)</span> turns', page)
    assert match, page[:2000]
    return int(match.group(1).replace(",", ""))


@pytest.fixture
def turns(app: Flask) -> None:
    add_turn("a1", pipeline="alpha", device="kitchen", transcript="turn on the lamp")
    add_turn(
        "a2",
        pipeline="alpha",
        device="office",
        created=T0 + dt.timedelta(days=2),
        transcript="what time is it",
        response="It is =1+2 o'clock.",
    )
    add_turn(
        "b1",
        pipeline="beta",
        device="kitchen",
        status="failed",
        error="llm down",
        created=T0 + dt.timedelta(days=5),
        transcript="play jazz",
    )
    add_turn(
        "b2",
        pipeline="beta",
        device="office",
        status="interrupted",
        created=T0 + dt.timedelta(days=6),
        transcript="set a timer",
        trace_id="ab" * 16,
    )
    with db.database.connection_context():
        for turn, name, pipeline, score in (("a1", "bob", "alpha", 3), ("b1", "cy", "beta", 1)):
            Annotation.create(
                turn=turn,
                user=User.get(name=name),
                pipeline=pipeline,
                overall_score=score,
                done=True,
            )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 4),
        ("pipeline=alpha", 2),
        ("device=office", 2),
        ("pipeline=beta&device=office", 1),
        ("status=failed", 1),
        ("error=yes", 1),
        ("error=no", 3),
        (f"from={(T0 + dt.timedelta(days=1)).date()}", 3),
        (f"to={(T0 + dt.timedelta(days=2)).date()}", 2),  # the end date is included
        (f"from={(T0 + dt.timedelta(days=2)).date()}&to={(T0 + dt.timedelta(days=5)).date()}", 2),
        ("annotated=yes", 2),
        ("annotated=no", 2),
        ("annotated=mine", 1),
        ("annotated=not-mine", 3),
        ("q=TURN+ON", 1),  # case-insensitive, transcript
        ("q=lamp", 3),  # responses too
        ("q=o%27clock", 1),
        ("q=llm+down", 1),
        ("q=" + "ab" * 16, 1),
        ("q=100%25", 0),  # a literal %, not a wildcard
        ("conversation=conv-a2", 1),
        ("from=not-a-date&status=bogus", 4),  # bad values are ignored, not errors
    ],
)
def test_turn_filters_and_search(turns: None, bob: FlaskClient, query: str, expected: int) -> None:
    assert _count(bob, query) == expected


def test_exports_hold_exactly_the_filtered_turns(turns: None, bob: FlaskClient) -> None:
    query = "pipeline=alpha"
    rows = [json.loads(line) for line in bob.get(f"/export/turns.jsonl?{query}").text.splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a2"]
    assert rows[0]["device"] == "kitchen" and rows[0]["latency"] == {}
    response = bob.get(f"/export/turns.csv?{query}")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in table] == ["a1", "a2"]
    assert table[1]["response"] == "It is =1+2 o'clock."  # only leading = is escaped
    assert "stt_ms" in table[0]  # latency metrics are columns
    failed = bob.get("/export/turns.csv?error=yes").text
    assert "b1" in failed and "a1" not in failed
    mine = bob.get("/export/annotations.csv").text
    assert "a1" in mine and "b1" not in mine
    assert bob.get("/export/turns.xml").status_code == 404


def test_csv_export_defuses_spreadsheet_formulas(bob: FlaskClient) -> None:
    add_turn("x", transcript='=HYPERLINK("http://evil")', response="@SUM(A1)")
    row = next(csv.DictReader(io.StringIO(bob.get("/export/turns.csv").text)))
    assert row["transcript"].startswith("'=") and row["response"].startswith("'@")


def test_turn_page_shows_what_was_spoken_next_to_the_response(bob: FlaskClient) -> None:
    add_turn("t2", response="Sure. **1.** Open the app 🎉", status="no_speech")
    with db.database.connection_context():
        db.Turn.update(
            spoken=["Sure.", "1. Open the app"], reasoning="The user <wants> the app."
        ).where(db.Turn.id == "t2").execute()
    page = bob.get("/turns/t2").text
    response = page.index('id="response"')
    spoken = page.index('id="spoken"')
    assert response < spoken
    assert "Sure. **1.** Open the app 🎉" in page[response:spoken]
    assert "<li>Sure.</li><li>1. Open the app</li>" in page[spoken:]
    assert "The user &lt;wants&gt; the app." in page  # escaped, apart from the answer
    assert "status-no_speech" in page
    add_turn("t3")  # no reasoning: no reasoning section; nothing spoken: a dash
    plain = bob.get("/turns/t3").text
    assert 'id="reasoning"' not in plain and 'id="spoken">—</dd>' in plain


def test_turn_page_shows_everything_about_a_turn(config: object, bob: FlaskClient) -> None:
    add_turn(
        "t1",
        transcript="turn on the lamp",
        response="The lamp is on.",
        trace_id="cd" * 16,
        latency={
            "endpointing_ms": 500.0,
            "stt_ms": 40.0,
            "stt_model_ms": 30.0,
            "stt_done_ms": 40.0,
            "llm_ms": 60.0,
            "llm_model_ms": 50.0,
            "first_sentence_ms": 100.0,
            "voice_to_voice_ms": 700.0,
        },
    )
    with db.database.connection_context():
        db.Media.create(turn="t1", kind="input", path="turns/t1/input.wav", seconds=2.5)
        db.Media.create(turn="t1", kind="output", path="turns/t1/output.wav", seconds=1.5)
        db.Media.create(turn="t1", kind="frame", path="turns/t1/frame-000.jpg", mime="image/jpeg")
    page = bob.get("/turns/t1").text
    assert 'id="audio-input"' in page and 'src="/media/turns/t1/input.wav"' in page
    assert 'id="audio-output"' in page and 'src="/media/turns/t1/frame-000.jpg"' in page
    assert "turn on the lamp" in page and "The lamp is on." in page
    assert "<svg" in page and "speech-to-text" in page and "voice-to-voice" in page
    assert 'href="/traces/t1"' in page
    assert f'href="http://jaeger.local:16686/trace/{"cd" * 16}"' in page
    assert bob.get("/turns/nope").status_code == 404


def test_trace_page_draws_the_stored_spans(bob: FlaskClient) -> None:
    trace = "ef" * 16
    add_turn("t1", trace_id=trace)
    with db.database.connection_context():
        start = 1_700_000_000_000_000_000
        for span_id, parent, name, service, a, b, status in (
            ("0000000000000001", "", "turn", "parley-server", 0, 90, "OK"),
            ("0000000000000002", "0000000000000001", "stt", "parley-server", 0, 30, "OK"),
            (
                "0000000000000003",
                "0000000000000002",
                "Stt/Transcribe",
                "parley-stt",
                2,
                28,
                "ERROR: x",
            ),
        ):
            db.Span.create(
                trace_id=trace,
                span_id=span_id,
                parent_id=parent,
                name=name,
                service=service,
                start_ns=start + a * 10**6,
                end_ns=start + b * 10**6,
                status=status,
                turn_id="t1",
            )
    page = bob.get("/traces/t1").text
    assert page.count("<rect") == 3 and "Stt/Transcribe (parley-stt)" in page
    assert 'class="error"' in page  # the failed span stands out
    assert f"http://jaeger.local:16686/trace/{trace}" in page
    assert "3 stored spans" in text(bob.get("/turns/t1").text)


def test_queue_serves_unannotated_turns_in_order_and_saves_and_moves_on(bob: FlaskClient) -> None:
    for i in range(3):
        add_turn(f"q{i}", created=T0 + dt.timedelta(minutes=i))
    add_turn("other", pipeline="beta", created=T0 - dt.timedelta(days=1))
    add_turn("failed", status="failed", created=T0 - dt.timedelta(days=2))
    page = bob.get("/queue/").text
    assert "Turn <code>other</code>" in page and "you: 0 of 4 turns" in text(page)
    page = bob.get("/queue/?pipeline=alpha").text
    assert "Turn <code>q0</code>" in page
    response = post(
        bob,
        "/turns/q0/annotate",
        scores(
            return_to="/queue/?pipeline=alpha",
            stt_score="4",
            overall_score="3",
            corrected_transcript="x",
        ),
    )
    assert response.headers["Location"] == "/queue/?pipeline=alpha"
    page = bob.get("/queue/?pipeline=alpha").text
    assert "Turn <code>q1</code>" in page and "you: 1 of 3 turns" in text(page)
    assert "Turn <code>q2</code>" in bob.get("/queue/?pipeline=alpha&after=q1").text  # skip
    assert 'id="queue-empty"' in bob.get("/queue/?pipeline=alpha&after=q2").text
    with db.database.connection_context():
        saved = Annotation.get(Annotation.turn == "q0")
    assert (saved.user.name, saved.stt_score, saved.overall_score) == ("bob", 4, 3)
    assert saved.word_errors is not None  # edit counts computed on save


def test_queue_carries_on_after_the_last_saved_turn_then_wraps(bob: FlaskClient) -> None:
    for i in range(4):
        add_turn(f"q{i}", created=T0 + dt.timedelta(minutes=i))
    post(bob, "/turns/q2/annotate", scores())
    assert "Turn <code>q3</code>" in bob.get("/queue/").text  # after the one saved last
    post(bob, "/turns/q3/annotate", scores())
    assert "Turn <code>q0</code>" in bob.get("/queue/").text  # then the older ones


def test_progress_page(turns: None, bob: FlaskClient, admin_client: FlaskClient) -> None:
    figures = totals(admin_client.get("/progress/").text)
    assert figures["progress.annotator.bob"] == figures["progress.annotator.cy"] == 1
    assert figures["progress.annotator.ada"] == 0
    mine = totals(bob.get("/progress/").text)
    assert "progress.annotator.cy" not in mine and mine["progress.annotator.bob"] == 1


def test_groups_from_filters_scored_by_annotators(
    turns: None, admin_client: FlaskClient, bob: FlaskClient
) -> None:
    response = post(
        admin_client,
        "/turns/group",
        {"name": "alpha scenario", "pipeline": "alpha", "description": "two turns"},
    )
    assert response.status_code == 302
    with db.database.connection_context():
        group = TurnGroup.get()
        members = [
            m.turn_id
            for m in TurnGroupMember.select()
            .where(TurnGroupMember.group == group.id)
            .order_by(TurnGroupMember.position)
        ]
    assert members == ["a1", "a2"]
    page = bob.get(f"/groups/{group.id}").text
    assert "turn on the lamp" in page and "what time is it" in page
    post(bob, f"/groups/{group.id}/annotate", {"score": "5", "comment": "coherent"})
    assert "1 rated (1 ratings)" in text(admin_client.get("/accuracy/").text)
    assert post(admin_client, f"/groups/{group.id}/annotate", {"score": "9"}).status_code == 422
    with db.database.connection_context():
        assert GroupAnnotation.select().count() == 1  # 9 is out of range: refused


def test_scores_out_of_range_are_refused(bob: FlaskClient) -> None:
    add_turn("t1")
    refused = post(bob, "/turns/t1/annotate", scores(overall_score="7"))
    assert (
        refused.status_code == 422
        and "Overall: &#39;7&#39; is not one of 0, 1, 2, 3, 4, 5" in refused.text
    )
    assert post(bob, "/turns/t1/annotate", scores(overall_score="x")).status_code == 422
    with db.database.connection_context():
        assert Annotation.select().count() == 0


def test_an_unknown_transcript_state_is_refused_and_the_form_kept(bob: FlaskClient) -> None:
    add_turn("t1")
    form = scores(transcript_state="bogus", comment="keep me")
    refused = post(bob, "/turns/t1/annotate", form)
    assert refused.status_code == 422
    assert "Transcript: &#39;bogus&#39; is not one of left, confirmed, edited" in refused.text
    assert "keep me" in refused.text  # nothing typed is lost
    with db.database.connection_context():
        assert Annotation.select().count() == 0
    assert post(bob, "/turns/t1/annotate", scores(transcript_state="confirmed")).status_code == 302
    with db.database.connection_context():
        assert Annotation.get().transcript_state == "confirmed"


def test_conversations_list_links_to_their_turns(turns: None, bob: FlaskClient) -> None:
    page = bob.get("/conversations/").text
    assert "/turns/?conversation=conv-a1" in page.replace("&amp;", "&") or "conv-a1" in page
    assert _count(bob, "conversation=conv-a1") == 1
