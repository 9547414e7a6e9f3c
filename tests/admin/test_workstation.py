"""The annotator's workstation: the queue keeps the turn list's whole filter, named queues
(assignees, a target number of ratings), a queue of groups, adding checked turns to a
group, the conversation so far above a turn, blind rating, the end of speech on the
trace, and old annotations brought to the new rules by the migration."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from admin import settings
from admin.models import Annotation, GroupAnnotation, Queue, TurnGroup, TurnGroupMember, User
from admin.sample_data import seed
from parley import db
from parley.config import Config
from tests.admin.conftest import T0, add_turn, client_for, post, scores, text, totals


def _turns(n: int, **kw: object) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(f"{kw.get('prefix', 't')}{i}")
        add_turn(
            ids[-1],
            created=T0 + dt.timedelta(minutes=i),
            **{k: v for k, v in kw.items() if k != "prefix"},  # type: ignore[arg-type]
        )
    return ids


def _served(client: FlaskClient, url: str) -> str | None:
    page = client.get(url).text
    if 'id="queue-empty"' in page:
        return None
    return page.split("Turn <code>", 1)[1].split("</code>", 1)[0]


def test_the_queue_takes_every_turn_filter(bob: FlaskClient) -> None:
    _turns(3, prefix="k", device="kitchen")
    _turns(3, prefix="o", device="office")
    add_turn("late", device="office", created=T0 + dt.timedelta(days=3))
    assert _served(bob, "/queue/?device=office") == "o0"
    assert _served(bob, f"/queue/?device=office&from={(T0 + dt.timedelta(days=1)).date()}") == (
        "late"
    )
    assert _served(bob, "/queue/?q=lamp&device=kitchen") == "k0"
    page = bob.get("/turns/?device=office&status=done").text
    assert 'href="/queue/?device=office&amp;status=done"' in page  # "Annotate" keeps it all
    saved = post(bob, "/turns/o0/annotate", scores(return_to="/queue/?device=office"))
    assert saved.headers["Location"] == "/queue/?device=office"
    assert _served(bob, "/queue/?device=office") == "o1"
    assert "you: 1 of 4 turns" in text(bob.get("/queue/?device=office").text)


def test_a_named_queue_serves_its_assignees_until_the_target(
    admin_client: FlaskClient, app: Flask
) -> None:
    _turns(3)
    _turns(2, prefix="b", pipeline="beta")
    made = post(
        admin_client,
        "/queues/new",
        {"name": "alpha twice", "kind": "turns", "pipeline": "alpha", "target": "2",
         "assignee": [str(_uid("bob")), str(_uid("cy"))]},
    )  # fmt: skip
    assert made.status_code == 302
    with db.database.connection_context():
        queue = Queue.get(Queue.name == "alpha twice")
    assert (queue.filters, queue.target) == ({"pipeline": "alpha"}, 2)
    bob, cy = client_for(app, "bob"), client_for(app, "cy")
    url = f"/queue/{queue.id}/"
    assert _served(bob, url) == "t0" and _served(cy, url) == "t0"
    post(bob, "/turns/t0/annotate", scores(return_to=url))
    post(cy, "/turns/t0/annotate", scores(return_to=url))
    post(admin_client, "/turns/t1/annotate", scores())
    post(cy, "/turns/t1/annotate", scores())
    # t0 and t1 have their two ratings: bob goes on with t2, not t1
    assert _served(bob, url) == "t2"
    figures = totals(bob.get(url).text)
    assert figures["queue.total"] == 3 and figures["queue.short"] == 1
    # not assigned: refused; and an assignee sees it listed
    with db.database.connection_context():
        from admin.auth import create_user

        create_user("eve", "correct horse battery", "annotator")
    assert client_for(app, "eve").get(url).status_code == 403
    assert f'href="{url}"' in bob.get("/").text
    page = admin_client.get("/queues/").text
    assert "alpha twice" in page and "pipeline alpha" in page


def test_a_queue_of_groups(admin_client: FlaskClient, app: Flask) -> None:
    ids = _turns(4)
    with db.database.connection_context():
        first, second = TurnGroup.create(name="first"), TurnGroup.create(name="second")
        for group, members in ((first, ids[:2]), (second, ids[2:])):
            for i, t in enumerate(members):
                TurnGroupMember.create(group=group, turn=t, position=i)
    post(
        admin_client,
        "/queues/new",
        {"name": "groups", "kind": "groups", "target": "1", "assignee": str(_uid("bob")),
         "group": [str(first.id), str(second.id)]},
    )  # fmt: skip
    with db.database.connection_context():
        queue = Queue.get(Queue.name == "groups")
    bob = client_for(app, "bob")
    url = f"/queue/{queue.id}/"
    page = bob.get(url).text
    assert "Group: first" in page and 'name="return_to"' in page
    refused = post(bob, f"/groups/{first.id}/annotate", {"return_to": url})
    assert refused.status_code == 422 and "give the group a score" in refused.text
    assert (
        post(bob, f"/groups/{first.id}/annotate", {"score": "na", "return_to": url}).headers[
            "Location"
        ]
        == url
    )
    assert "Group: second" in bob.get(url).text
    post(bob, f"/groups/{second.id}/annotate", {"score": "4", "return_to": url})
    assert 'id="queue-empty"' in bob.get(url).text
    with db.database.connection_context():
        rows = {g.group.name: (g.score, g.not_applicable) for g in GroupAnnotation.select()}
    assert rows == {"first": (None, True), "second": (4, False)}


def test_adding_checked_turns_to_a_group(admin_client: FlaskClient, bob: FlaskClient) -> None:
    ids = _turns(4)
    page = admin_client.get("/turns/").text
    assert page.count('class="turn-check"') == 4 and 'id="add-to-group"' in page
    post(admin_client, "/turns/group/add", {"turn": [ids[2], ids[0]], "name": "picked"})
    with db.database.connection_context():
        group = TurnGroup.get(TurnGroup.name == "picked")
    post(admin_client, "/turns/group/add", {"turn": [ids[0], ids[3]], "group": str(group.id)})
    with db.database.connection_context():
        members = [
            m.turn_id
            for m in TurnGroupMember.select()
            .where(TurnGroupMember.group == group.id)
            .order_by(TurnGroupMember.position)
        ]
    assert members == [ids[2], ids[0], ids[3]]  # in the order ticked, no duplicates
    assert post(bob, "/turns/group/add", {"turn": ids[1], "name": "x"}).status_code == 403
    assert 'class="turn-check"' not in bob.get("/turns/").text


def test_the_conversation_so_far_is_shown_above_the_turn(bob: FlaskClient) -> None:
    for i, said in enumerate(["first question", "second question", "third", "fourth", "fifth"]):
        add_turn(f"c{i}", conversation="conv", position=i, transcript=said)
    page = bob.get("/turns/c4").text
    earlier = page.split('id="earlier-turns"', 1)[1].split("</section>", 1)[0]
    assert "second question" in earlier and "fourth" in earlier  # the last three (config)
    assert "first question" not in earlier and "fifth" not in earlier
    assert page.index('id="earlier-turns"') < page.index("Turn <code>c4</code>")
    assert 'id="earlier-turns"' not in bob.get("/turns/c0").text


def test_blind_rating_until_an_admin_allows_it(bob: FlaskClient, admin_client: FlaskClient) -> None:
    add_turn("t1")
    post(admin_client, "/turns/t1/annotate", scores(overall_score="5"))
    assert 'id="blind"' in bob.get("/accuracy/").text
    assert bob.get("/accuracy/summary.json").status_code == 403
    assert "mean overall" not in bob.get("/progress/").text
    assert post(bob, "/accuracy/visibility", {"show": "yes"}).status_code == 403
    post(admin_client, "/accuracy/visibility", {"show": "yes"})
    with db.database.connection_context():
        assert settings.get(settings.SHOW_RESULTS) is True
    assert (
        bob.get("/accuracy/summary.json").get_json()["pipelines"]["alpha"]["mean"]["overall_score"]
        == 5.0
    )
    post(admin_client, "/accuracy/visibility", {"show": "no"})
    assert bob.get("/accuracy/summary.json").status_code == 403


def test_the_trace_marks_the_end_of_speech(admin_client: FlaskClient, config: Config) -> None:
    with db.database.connection_context():
        seed(20, annotators=1, seed_value=4)
        turn = db.Turn.select().where(db.Turn.status == "done").first()
        vad = db.Span.get((db.Span.turn_id == turn.id) & (db.Span.name == "vad"))
        stt = db.Span.get((db.Span.turn_id == turn.id) & (db.Span.name == "stt"))
    page = admin_client.get(f"/traces/{turn.id}").text
    assert 'class="mark-speech"' in page and "end of speech" in page
    speech = vad.attributes["parley.vad.speech_end_s"] - vad.attributes["parley.vad.speech_start_s"]
    after = (stt.end_ns - vad.start_ns) / 1e6 - speech * 1000
    cell = page.split('data-after-speech="stt">', 1)[1].split("<", 1)[0]
    assert float(cell.replace(",", "")) == round(after, 2)
    # the streaming STT span is long; what it costs after the end of speech is short
    assert (stt.end_ns - stt.start_ns) / 1e6 > 1000 > after


def test_old_annotations_are_brought_to_the_new_rules(tmp_path: Path) -> None:
    """A store from before this change: its annotations get states, done and n/a."""
    from admin.models import create_admin_tables

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    old.close()
    db.open_database(f"sqlite:///{path}")
    create_admin_tables()
    with db.database.connection_context():
        rows = {a.id: a for a in Annotation.select()}
        names = {i.name for i in db.database.get_indexes("admin_annotation")}
    db.database.close()
    edited, unchanged, blank, partial = rows[1], rows[2], rows[3], rows[4]
    assert (edited.transcript_state, edited.word_errors, edited.done) == ("edited", 1, True)
    assert (unchanged.transcript_state, unchanged.word_count) == ("left", None)  # blind Enter
    assert not blank.done and blank.not_applicable == []  # back to the queue
    assert partial.done and partial.not_applicable == ["llm_score", "tts_score"]
    assert "admin_annotation_live_turn_user" in names
    assert "admin_annotation_turn_id_user_id" not in names


def _uid(name: str) -> int:
    with db.database.connection_context():
        return int(User.get(User.name == name).id)


# The admin's tables as the release before this change made them (and its store).
OLD_SCHEMA = """
CREATE TABLE schema_migration (name VARCHAR(200) PRIMARY KEY, applied_at DATETIME NOT NULL);
INSERT INTO schema_migration VALUES ('0001-baseline', '2026-01-01'),
  ('admin-0001-store-indexes', '2026-01-01');
CREATE TABLE device (id VARCHAR(128) PRIMARY KEY, first_seen DATETIME, last_seen DATETIME,
  agent_version VARCHAR(255));
CREATE TABLE conversation (id VARCHAR(36) PRIMARY KEY, device_id VARCHAR(128), pipeline
  VARCHAR(255), started_at DATETIME, ended_at DATETIME);
CREATE TABLE turn (id VARCHAR(36) PRIMARY KEY, conversation_id VARCHAR(36), position INTEGER,
  pipeline VARCHAR(255), created_at DATETIME, status VARCHAR(255), transcript TEXT, response
  TEXT, error TEXT, error_stage VARCHAR(255), speech_seconds REAL, trace_id VARCHAR(255),
  latency TEXT);
CREATE TABLE media (id INTEGER PRIMARY KEY, turn_id VARCHAR(36), kind VARCHAR(255), path
  VARCHAR(255), mime VARCHAR(255), sample_rate INTEGER, seconds REAL, bytes INTEGER,
  created_at DATETIME);
CREATE TABLE span (id INTEGER PRIMARY KEY, trace_id VARCHAR(32), span_id VARCHAR(16),
  parent_id VARCHAR(16), name VARCHAR(255), service VARCHAR(255), kind VARCHAR(255), start_ns
  INTEGER, end_ns INTEGER, status VARCHAR(255), attributes TEXT, turn_id VARCHAR(255));
CREATE TABLE admin_user (id INTEGER PRIMARY KEY, name VARCHAR(64) UNIQUE, password_hash
  VARCHAR(256), role VARCHAR(255), active INTEGER, created_at DATETIME, last_login DATETIME);
CREATE TABLE admin_annotation (id INTEGER PRIMARY KEY, turn_id VARCHAR(36) NOT NULL, user_id
  INTEGER NOT NULL, pipeline VARCHAR(255), stt_score INTEGER, llm_score INTEGER, tts_score
  INTEGER, overall_score INTEGER, corrected_transcript TEXT, better_response TEXT, comment
  TEXT, word_errors INTEGER, word_count INTEGER, char_errors INTEGER, char_count INTEGER,
  created_at DATETIME, updated_at DATETIME);
CREATE UNIQUE INDEX admin_annotation_turn_id_user_id ON admin_annotation (turn_id, user_id);
CREATE TABLE admin_turn_group (id INTEGER PRIMARY KEY, name VARCHAR(200), description TEXT,
  created_by_id INTEGER, created_at DATETIME);
CREATE TABLE admin_turn_group_member (id INTEGER PRIMARY KEY, group_id INTEGER, turn_id
  VARCHAR(36), position INTEGER);
CREATE TABLE admin_group_annotation (id INTEGER PRIMARY KEY, group_id INTEGER, user_id
  INTEGER, score INTEGER, comment TEXT, updated_at DATETIME);
CREATE TABLE admin_latency_vector (turn_id VARCHAR(36) PRIMARY KEY, pipeline VARCHAR(255),
  device VARCHAR(255), created_at DATETIME, status VARCHAR(255), source_len INTEGER, layout
  INTEGER, numbers BLOB, first_audio_ms REAL);
CREATE TABLE admin_score_vector (turn_id VARCHAR(36) PRIMARY KEY, pipeline VARCHAR(255),
  annotations INTEGER, last_update DATETIME, numbers BLOB);
INSERT INTO device VALUES ('pi', '2026-01-01', '2026-01-01', '');
INSERT INTO conversation VALUES ('c', 'pi', 'alpha', '2026-01-01', NULL);
INSERT INTO turn VALUES ('t', 'c', 0, 'alpha', '2026-01-01', 'done', 'turn of the lamp',
  '', '', '', 1.0, '', '{}');
INSERT INTO admin_user VALUES (1, 'a', 'x', 'annotator', 1, '2026-01-01', NULL),
  (2, 'b', 'x', 'annotator', 1, '2026-01-01', NULL), (3, 'c', 'x', 'annotator', 1,
  '2026-01-01', NULL), (4, 'd', 'x', 'annotator', 1, '2026-01-01', NULL);
INSERT INTO admin_annotation VALUES
  (1, 't', 1, 'alpha', 4, 4, 4, 4, 'turn on the lamp', '', '', 1, 4, 1, 16, '2026-01-01',
   '2026-01-01'),
  (2, 't', 2, 'alpha', 4, 4, 4, 4, 'turn of the lamp', '', '', 0, 4, 0, 16, '2026-01-01',
   '2026-01-01'),
  (3, 't', 3, 'alpha', NULL, NULL, NULL, NULL, 'turn of the lamp', '', '', 0, 4, 0, 16,
   '2026-01-01', '2026-01-01'),
  (4, 't', 4, 'alpha', 3, NULL, NULL, 2, '', '', '', NULL, NULL, NULL, NULL, '2026-01-01',
   '2026-01-01');
"""
