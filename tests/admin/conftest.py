"""An admin app on a fresh SQLite store per test, users of both roles, and a client
that logs in through the real form (CSRF and all)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask_admin", reason="the admin tests need the [admin] extra")

from flask import Flask
from flask.testing import FlaskClient

from admin import auth
from admin.app import create_app
from admin.auth import create_user, limiter
from parley import db
from parley.config import Config, load_config

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def csrf(client: FlaskClient, url: str = "/login") -> str:
    match = TOKEN.search(client.get(url).text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login", data={"name": name, "password": password, "csrf_token": csrf(client)}
    )


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None) -> Any:
    """A form POST with the session's CSRF token (taken from the home page)."""
    return client.post(url, data={**(data or {}), "csrf_token": csrf(client, "/")})


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes in tests (scrypt costs ~0.25 s a login on 2 cores); one
    test checks the real default."""
    monkeypatch.setattr(auth, "PASSWORD_METHOD", "pbkdf2:sha256:1000")


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    """The admin's config: every admin test runs on SQLite and on PostgreSQL."""
    return load_config(
        env={
            "PARLEY_HOME": str(tmp_path),
            "PARLEY_STORE_DATABASE_URL": database_url,
            "PARLEY_ADMIN_JAEGER_URL": "http://jaeger.local:16686",
        }
    )


def same_store(config: Config) -> dict[str, str]:
    """The environment for another config (e.g. with questions) on ``config``'s store."""
    return {"PARLEY_HOME": str(config.home), "PARLEY_STORE_DATABASE_URL": config.database_url}


@pytest.fixture
def app(config: Config) -> Iterator[Flask]:
    application = create_app(config, secret_key="test-secret-key-" + "x" * 32)
    application.config["TESTING"] = True
    with db.database.connection_context():
        create_user("ada", PASSWORD, "admin")
        create_user("bob", PASSWORD, "annotator")
        create_user("cy", PASSWORD, "annotator")
    limiter.reset()
    yield application
    db.database.close()


def client_for(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    response = login(client, name)
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def admin_client(app: Flask) -> FlaskClient:
    return client_for(app, "ada")


@pytest.fixture
def bob(app: Flask) -> FlaskClient:
    return client_for(app, "bob")


@pytest.fixture
def cy(app: Flask) -> FlaskClient:
    return client_for(app, "cy")


def add_turn(
    turn_id: str,
    *,
    pipeline: str = "alpha",
    device: str = "kitchen",
    conversation: str | None = None,
    position: int | None = None,
    created: dt.datetime = T0,
    status: str = "done",
    transcript: str = "turn on the lamp",
    response: str = "The lamp is on.",
    error: str = "",
    latency: dict[str, float] | None = None,
    trace_id: str = "",
) -> db.Turn:
    """A turn (and its device and conversation, made when missing)."""
    with db.database.connection_context():
        db.Device.get_or_create(id=device)
        conversation = conversation or f"conv-{turn_id}"
        db.Conversation.get_or_create(
            id=conversation,
            defaults={"device": device, "pipeline": pipeline, "started_at": created},
        )
        if position is None:
            position = db.Turn.select().where(db.Turn.conversation == conversation).count()
        return db.Turn.create(
            id=turn_id,
            conversation=conversation,
            position=position,
            pipeline=pipeline,
            created_at=created,
            status=status,
            transcript=transcript,
            response=response,
            error=error,
            error_stage="llm" if error else "",
            latency=latency or {},
            trace_id=trace_id,
        )


def user_id(name: str) -> int:
    from admin.models import User

    with db.database.connection_context():
        return int(User.get(User.name == name).id)


SCORES = ("stt_score", "llm_score", "tts_score", "overall_score")


def scores(**values: str) -> dict[str, str]:
    """A complete annotation form (the save rules want every score or n/a): each
    built-in score 3 unless given."""
    return {**dict.fromkeys(SCORES, "3"), **values}


def text(page: str) -> str:
    """A page's text as a reader sees it: tags removed, white space collapsed."""
    words = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    return words.replace(" ,", ",").replace("( ", "(").replace(" )", ")").replace(" ;", ";")


def totals(page: str) -> dict[str, int]:
    """Every figure a page marks with data-total="name" (admin templates), as numbers."""
    found = re.findall(r'data-total="([^"]+)"[^>]*>\s*([\d,]+)\s*<', page)
    return {name: int(value.replace(",", "")) for name, value in found}
