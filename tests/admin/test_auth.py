"""Login, sessions, CSRF and the gate: nothing but the login page without a session."""

from __future__ import annotations

import dataclasses
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import auth
from admin.app import create_app
from admin.auth import MAX_FAILURES
from admin.models import Annotation, Queue, TurnGroup, TurnGroupMember, User
from parley import db
from parley.config import Config
from tests.admin.conftest import PASSWORD, add_turn, client_for, csrf, login, post, scores

PAGES = [
    "/",
    "/turns/",
    "/turns/t1",
    "/queue/",
    "/queue/?pipeline=alpha",
    "/groups/",
    "/latency/",
    "/latency/summary.json",
    "/accuracy/",
    "/accuracy/summary.json",
    "/compare/",
    "/progress/",
    "/queues/",
    "/queue/1/",
    "/annotations/",
    "/conversations/",
    "/traces/t1",
    "/export/turns.csv",
    "/export/annotations.jsonl",
]


def _seed_for_every_route() -> dict[str, str]:
    add_turn("t1", latency={"stt_ms": 10.0})
    with db.database.connection_context():
        group = TurnGroup.create(name="g")
        TurnGroupMember.create(group=group, turn="t1")
        annotation = Annotation.create(turn="t1", user=User.get(name="bob"), pipeline="alpha")
        media = db.Media.create(turn="t1", kind="input", path="turns/t1/input.wav")
        queue = Queue.create(name="q", filters={"pipeline": "alpha"}, target=2)
    return {
        "queue_id": str(queue.id),
        "annotation_id": str(annotation.id),
        "turn_id": "t1",
        "group_id": str(group.id),
        "relative": str(media.path),
        "kind": "turns",
        "fmt": "csv",
        "export_type": "csv",
        "filename": "parley.css",
        "id": str(annotation.id),
        "item_id": "1",
        "side": "A",
    }


def _urls(app: Flask, values: dict[str, str]) -> list[tuple[str, str, set[str]]]:
    out = []
    for rule in app.url_map.iter_rules():
        url = rule.rule
        for name in rule.arguments:
            url = re.sub(rf"<(?:[a-z]+:)?{name}>", values[name], url)
        out.append((rule.endpoint, url, set(rule.methods or ()) - {"HEAD", "OPTIONS"}))
    return out


def test_every_route_but_login_refuses_anonymous_visitors(app: Flask) -> None:
    urls = _urls(app, _seed_for_every_route())
    assert len(urls) > 40
    client = app.test_client()
    for endpoint, url, methods in urls:
        if endpoint == "auth.login":
            assert client.get(url).status_code == 200
            continue
        if "GET" in methods:
            response = client.get(url)
            response.close()
            assert response.status_code in (302, 401), (url, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login?next="), url
        if "POST" in methods:  # with a valid token, still refused without a session
            response = client.post(url, data={"csrf_token": csrf(client)})
            assert response.status_code == 401, (url, response.status_code)
    # media, static files and exports included
    assert client.get("/media/turns/t1/input.wav").status_code == 401
    assert client.get("/static/parley.css").status_code == 401
    assert client.get("/static/admin/admin/css/bootstrap4/admin.css").status_code == 401
    assert client.get("/export/turns.csv").status_code == 302


def test_every_page_renders_for_an_admin(app: Flask, admin_client: FlaskClient) -> None:
    _seed_for_every_route()
    for url in PAGES:
        response = admin_client.get(url)
        body = response.get_data(as_text=True)  # streamed exports are read to the end
        assert response.status_code == 200, (url, response.status_code, body[:500])
    for url in ("/users/", "/static/parley.css", "/static/admin/admin/css/bootstrap4/admin.css"):
        assert admin_client.get(url).status_code == 200, url


def test_login_page_links_nothing_that_needs_a_session(app: Flask) -> None:
    page = app.test_client().get("/login").text
    assert "stylesheet" not in page and "<script" not in page  # its style is inline


def test_wrong_password_is_refused_and_repeated_failures_throttle_the_address(
    app: Flask,
) -> None:
    client = app.test_client()
    response = login(client, "bob", "wrong password")
    assert response.status_code == 401
    assert "Wrong name or password" in response.text
    assert client.get("/").status_code == 302
    for _ in range(MAX_FAILURES - 1):
        login(client, "bob", "wrong password")
    throttled = login(client, "bob", PASSWORD)  # the right password, too late
    assert throttled.status_code == 429 and "Too many failed logins" in throttled.text
    # The account is not locked: bob logs in from his own address (tests/admin/test_login.py).


def test_unknown_users_and_deactivated_accounts_cannot_log_in(app: Flask) -> None:
    assert login(app.test_client(), "nobody").status_code == 401
    with db.database.connection_context():
        User.update(active=False).where(User.name == "cy").execute()
    assert login(app.test_client(), "cy").status_code == 401


def test_session_cookie_is_hardened(app: Flask) -> None:
    client = app.test_client()
    response = login(client, "bob")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("parley_admin=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on a LAN unless configured


def test_secure_cookies_when_configured(config: Config) -> None:
    secure = dataclasses.replace(
        config, admin=dataclasses.replace(config.admin, cookie_secure=True)
    )
    app = create_app(secure, secret_key="k" * 32)
    with db.database.connection_context():
        from admin.auth import create_user

        create_user("eve", PASSWORD, "annotator")
    client = app.test_client()
    cookie = login(client, "eve").headers["Set-Cookie"]
    assert "Secure" in cookie


def test_security_headers(admin_client: FlaskClient) -> None:
    response = admin_client.get("/turns/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert re.search(r"script-src 'self' 'nonce-[\w-]+'", csp)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # no page pulls anything from another host: the site works offline
    assert not re.search(r'(?:src|href)="(?:https?:)?//', response.text)


def test_logout_ends_the_session_and_needs_a_post(bob: FlaskClient) -> None:
    assert bob.get("/logout").status_code == 405
    assert post(bob, "/logout").status_code == 302
    assert bob.get("/").status_code == 302


def test_changing_a_password_or_deactivating_ends_other_sessions(app: Flask) -> None:
    bob, cy = client_for(app, "bob"), client_for(app, "cy")
    with db.database.connection_context():
        from admin.auth import create_user

        create_user("bob", "a brand new password", "annotator", update=True)
        User.update(active=False).where(User.name == "cy").execute()
    assert bob.get("/").status_code == 302
    assert cy.get("/").status_code == 302


def test_login_without_csrf_token_is_rejected(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/login", data={"name": "bob", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_forms_without_csrf_token_are_rejected(app: Flask, bob: FlaskClient) -> None:
    add_turn("t1")
    response = bob.post("/turns/t1/annotate", data={"overall_score": "4"})
    assert response.status_code == 400
    response = bob.post("/turns/t1/annotate", data={"overall_score": "4", "csrf_token": "forged"})
    assert response.status_code == 400
    assert bob.post("/logout").status_code == 400
    with db.database.connection_context():
        assert Annotation.select().count() == 0
    assert post(bob, "/turns/t1/annotate", scores(overall_score="4")).status_code == 302
    with db.database.connection_context():
        assert Annotation.get().overall_score == 4


def test_login_redirects_only_within_the_site(app: Flask) -> None:
    for target, expected in (
        ("/latency/", "/latency/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ):
        client = app.test_client()
        token = csrf(client)
        response = client.post(
            f"/login?next={target}", data={"name": "bob", "password": PASSWORD, "csrf_token": token}
        )
        assert response.headers["Location"] == expected, target


def test_passwords_are_stored_as_scrypt_hashes(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "PASSWORD_METHOD", "scrypt")  # the real default
    with db.database.connection_context():
        auth.create_user("dee", PASSWORD, "annotator")
        stored = User.get(User.name == "dee").password_hash
    assert PASSWORD not in stored and stored.startswith("scrypt:")
    assert login(app.test_client(), "dee").status_code == 302
    with pytest.raises(auth.AuthError, match="at least 8"):
        auth.hash_password("short")


def test_the_login_page_says_how_to_make_the_first_account(config: Config) -> None:
    app = create_app(config, secret_key="k" * 40)
    page = app.test_client().get("/login").text
    assert 'id="no-accounts"' in page and "parley admin create-user NAME --role admin" in page
    with db.database.connection_context():
        auth.create_user("first", PASSWORD, "admin")
    assert 'id="no-accounts"' not in app.test_client().get("/login").text
    db.database.close()
