"""Roles: admins may do everything; annotators read turns and write their own
annotations, and nothing else, whatever URL or form field they try."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import auth
from admin.models import Annotation, GroupAnnotation, TurnGroup, User
from parley import db
from parley.config import Config
from tests.admin.conftest import add_turn, post, scores, user_id


def _annotate(name: str, turn: str, **fields: object) -> Annotation:
    with db.database.connection_context():
        return Annotation.create(turn=turn, user=User.get(name=name), pipeline="alpha", **fields)


def test_annotator_cannot_delete_turns(bob: FlaskClient) -> None:
    add_turn("t1")
    assert post(bob, "/turns/t1/delete").status_code == 403
    with db.database.connection_context():
        assert db.Turn.get_or_none(db.Turn.id == "t1") is not None
    assert "Delete turn" not in bob.get("/turns/t1").text


def test_admin_deletes_a_turn_with_its_media_files_and_annotations(
    config: Config, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    wav = config.data_dir / "turns/t1/input.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    with db.database.connection_context():
        db.Media.create(turn="t1", kind="input", path="turns/t1/input.wav")
    _annotate("bob", "t1", overall_score=3)
    assert post(admin_client, "/turns/t1/delete").status_code == 302
    with db.database.connection_context():
        assert db.Turn.select().count() == 0
        assert Annotation.select().count() == 0 and db.Media.select().count() == 0
    assert not wav.exists()


def test_annotators_cannot_edit_or_delete_another_annotation_and_delete_their_own_softly(
    bob: FlaskClient, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    theirs = _annotate("cy", "t1", overall_score=2, comment="cy's", done=True)
    mine = _annotate("bob", "t1", overall_score=4, done=True)
    # the table is read-only for everyone: annotations are written on the turn page
    assert bob.get(f"/annotations/edit/?id={theirs.id}").status_code == 302
    assert post(bob, f"/annotations/edit/?id={theirs.id}", {"comment": "x"}).status_code == 302
    assert post(bob, "/annotations/delete/", {"id": str(theirs.id)}).status_code == 302
    # deleting another user's annotation: refused, whatever the URL
    assert bob.get(f"/annotations/{theirs.id}/delete").status_code == 403
    assert post(bob, f"/annotations/{theirs.id}/delete").status_code == 403
    with db.database.connection_context():
        kept = Annotation.get_by_id(theirs.id)
    assert (kept.overall_score, kept.comment, kept.deleted_at) == (2, "cy's", None)
    # their own: a confirmation page first (no script: the CSP blocks inline ones)
    page = bob.get(f"/annotations/{mine.id}/delete").text
    assert 'id="confirm-button"' in page and "onclick" not in page
    with db.database.connection_context():
        assert Annotation.get_by_id(mine.id).deleted_at is None  # asking deletes nothing
    assert post(bob, f"/annotations/{mine.id}/delete").status_code == 302
    with db.database.connection_context():
        gone = Annotation.get_by_id(mine.id)  # kept, marked
    assert gone.deleted_at is not None and gone.deleted_by.name == "bob"
    assert "delete my annotation" not in bob.get("/turns/t1").text
    assert bob.get("/annotations/").text.count('href="/turns/t1"') == 0
    # admins see it, marked, and can restore it
    turn_page = admin_client.get("/turns/t1").text
    assert "deleted" in turn_page and f"/annotations/{mine.id}/restore" in turn_page
    assert post(bob, f"/annotations/{mine.id}/restore").status_code == 403
    assert post(admin_client, f"/annotations/{mine.id}/restore").status_code == 302
    with db.database.connection_context():
        assert Annotation.get_by_id(mine.id).deleted_at is None


def test_annotators_list_only_their_own_annotations(
    bob: FlaskClient, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    add_turn("t2")
    _annotate("cy", "t1", comment="comment-by-cy")
    _annotate("bob", "t2", comment="comment-by-bob")
    page = bob.get("/annotations/").text
    assert "comment-by-bob" in page and "comment-by-cy" not in page
    page = admin_client.get("/annotations/").text
    assert "comment-by-bob" in page and "comment-by-cy" in page


def test_the_annotation_form_writes_the_session_users_annotation_only(bob: FlaskClient) -> None:
    add_turn("t1")
    theirs = _annotate("cy", "t1", overall_score=1)
    response = post(
        bob,
        "/turns/t1/annotate",
        scores(
            overall_score="5",
            user=str(user_id("cy")),
            user_id=str(user_id("cy")),
            id=str(theirs.id),
        ),
    )
    assert response.status_code == 302
    with db.database.connection_context():
        rows = {a.user.name: a.overall_score for a in Annotation.select()}
    assert rows == {"cy": 1, "bob": 5}


def test_annotators_do_not_see_each_others_scores_but_admins_do(
    bob: FlaskClient, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    _annotate("cy", "t1", overall_score=2, comment="secret-cy-note")
    assert "secret-cy-note" not in bob.get("/turns/t1").text
    assert "secret-cy-note" in admin_client.get("/turns/t1").text


def test_users_are_managed_by_admins_only(bob: FlaskClient, admin_client: FlaskClient) -> None:
    assert bob.get("/users/").status_code == 403
    assert (
        post(
            bob, "/users/new/", {"name": "mallory", "role": "admin", "password": "x" * 12}
        ).status_code
        == 403
    )
    assert 'href="/users/"' not in bob.get("/").text
    assert 'href="/users/"' in admin_client.get("/").text
    response = post(
        admin_client,
        "/users/new/",
        {"name": "newbie", "role": "annotator", "active": "y", "password": "long enough pw"},
    )
    assert response.status_code == 302
    with db.database.connection_context():
        newbie = User.get(User.name == "newbie")
        assert not User.select().where(User.name == "mallory").exists()
    assert newbie.role == "annotator" and "long enough pw" not in newbie.password_hash


def test_the_user_form_refuses_the_names_create_user_refuses(admin_client: FlaskClient) -> None:
    for name in ("\x00x", "a\tb", "line\nbreak", "\x7f", "x" * 65):
        response = post(
            admin_client,
            "/users/new/",
            {"name": name, "role": "annotator", "active": "y", "password": "long enough pw"},
        )
        assert response.status_code == 200, name  # the form again, with the reason
        assert "a user name has" in response.text, name
    blank = {"name": "   ", "role": "annotator", "active": "y", "password": "long enough pw"}
    assert "This field is required" in post(admin_client, "/users/new/", blank).text
    with db.database.connection_context():
        assert [u.name for u in User.select().order_by(User.name)] == ["ada", "bob", "cy"]
    ok = {"name": "  Zoë Ng ", "role": "annotator", "active": "y", "password": "long enough pw"}
    assert post(admin_client, "/users/new/", ok).status_code == 302
    with db.database.connection_context():
        assert User.get_or_none(User.name == "Zoë Ng") is not None


def test_create_user_refuses_control_characters(app: Flask) -> None:
    with db.database.connection_context():
        for name in ("\x00x", "a\x1bb"):
            with pytest.raises(auth.AuthError, match="printable characters only"):
                auth.create_user(name, "long enough pw", "annotator")


def test_annotator_cannot_make_or_delete_groups_but_can_score_them(
    bob: FlaskClient, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    assert post(bob, "/turns/group", {"name": "g"}).status_code == 403
    assert post(admin_client, "/turns/group", {"name": "scenario"}).status_code == 302
    with db.database.connection_context():
        group = TurnGroup.get()
    assert post(bob, f"/groups/{group.id}/delete").status_code == 403
    assert post(bob, f"/groups/{group.id}/remove/t1").status_code == 403
    assert (
        post(bob, f"/groups/{group.id}/annotate", {"score": "4", "comment": "ok"}).status_code
        == 302
    )
    with db.database.connection_context():
        scored = GroupAnnotation.get()
    assert (scored.user.name, scored.score) == ("bob", 4)


def test_annotator_exports_only_their_own_annotations(
    bob: FlaskClient, admin_client: FlaskClient
) -> None:
    add_turn("t1")
    _annotate("cy", "t1", overall_score=2)
    _annotate("bob", "t1", overall_score=4)
    rows = [json.loads(line) for line in bob.get("/export/annotations.jsonl").text.splitlines()]
    assert [(r["user"], r["overall_score"]) for r in rows] == [("bob", 4)]
    rows = [
        json.loads(line) for line in admin_client.get("/export/annotations.jsonl").text.splitlines()
    ]
    assert sorted(r["user"] for r in rows) == ["bob", "cy"]


def test_conversations_cannot_be_edited_or_deleted(
    admin_client: FlaskClient, tmp_path: Path
) -> None:
    add_turn("t1", conversation="c1")
    assert admin_client.get("/conversations/edit/?id=c1").status_code in (302, 403, 404)
    post(admin_client, "/conversations/delete/", {"id": "c1"})
    with db.database.connection_context():
        assert db.Conversation.get_or_none(db.Conversation.id == "c1") is not None


def test_an_admin_cannot_demote_themselves(app: Flask, admin_client: FlaskClient) -> None:
    me = user_id("ada")
    post(admin_client, f"/users/edit/?id={me}", {"name": "ada", "role": "annotator", "active": "y"})
    with db.database.connection_context():
        assert User.get_by_id(me).role == "admin"
