"""Logging in: the page returned to is only ever on this site, failed logins are
throttled per client address (nobody can lock another user out), and the work done
for an unknown name is the work done for a real one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import auth
from admin.app import create_app
from admin.auth import MAX_FAILURES, safe_next
from admin.models import User
from parley import db
from parley.config import Config
from tests.admin.conftest import PASSWORD, csrf, login

# Each would take the browser off the site if it were followed (directly, or after a
# browser drops tabs/newlines, reads "\" as "/", or a proxy decodes it once more).
OFF_SITE = [
    "/\t/evil.example",  # the reported case: next=%2F%09%2Fevil.example
    "/\n/evil.example",
    "/\r/evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    " //evil.example",
    "\t//evil.example",
    "//evil.example",
    "///evil.example",
    "//evil.example/latency/",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example",
    "http:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "/%2F/evil.example",  # decoded once more: ///evil.example
    "/%2f%2fevil.example",
    "/%252F%252Fevil.example",  # decoded twice more
    "/%09/evil.example",
    "/%5Cevil.example",
    "/%5c%5cevil.example",
    "/\uff0f\uff0fevil.example",  # fullwidth solidus
    "/\u3002evil.example",
    "",
]
ON_SITE = [
    "/",
    "/latency/",
    "/turns/t1",
    "/turns/?pipeline=alpha&order=oldest",
    "/turns/?q=lamp%20on&device=kitchen",
    "/queue/?pipeline=alpha#shortcuts",
]


def _login_to(client: FlaskClient, target: str, name: str = "bob") -> Any:
    token = csrf(client)
    return client.post(
        f"/login?next={quote(target, safe='')}",
        data={"name": name, "password": PASSWORD, "csrf_token": token},
    )


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_redirects_off_the_site(app: Flask, target: str) -> None:
    response = _login_to(app.test_client(), target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/", repr(target)


@pytest.mark.parametrize("target", ON_SITE)
def test_login_returns_to_the_page_asked_for(app: Flask, target: str) -> None:
    response = _login_to(app.test_client(), target)
    assert response.headers["Location"] == target


def test_the_gate_sends_the_page_asked_for_and_login_returns_there(app: Flask) -> None:
    client = app.test_client()
    to_login = client.get("/turns/?pipeline=alpha&order=oldest")
    assert to_login.status_code == 302
    login_url = to_login.headers["Location"]
    token = csrf(client)
    back = client.post(login_url, data={"name": "bob", "password": PASSWORD, "csrf_token": token})
    assert back.headers["Location"] == "/turns/?pipeline=alpha&order=oldest"


def test_safe_next_on_its_own(app: Flask) -> None:
    with app.test_request_context():
        assert [safe_next(t) for t in OFF_SITE] == ["/"] * len(OFF_SITE)
        assert [safe_next(t) for t in ON_SITE] == ON_SITE
        assert safe_next(None) == "/"


# ---------------------------------------------------------------- throttle


def _from(app: Flask, address: str, forwarded: str = "") -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if forwarded:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
    return client


def _fail(client: FlaskClient, times: int, name: str = "bob") -> None:
    for _ in range(times):
        assert login(client, name, "wrong password").status_code == 401


def test_an_attacker_cannot_lock_the_victim_out(app: Flask) -> None:
    attacker, victim = _from(app, "203.0.113.9"), _from(app, "198.51.100.4")
    _fail(attacker, MAX_FAILURES)
    refused = login(attacker, "bob")  # even the right password, from there
    assert refused.status_code == 429
    assert "Too many failed logins from your address" in refused.text
    assert login(attacker, "cy").status_code == 429  # every name, from that address
    assert login(victim, "bob").status_code == 302  # bob himself is not locked out
    assert victim.get("/").status_code == 200


def test_only_failures_count(app: Flask) -> None:
    office = _from(app, "192.0.2.10")
    for _ in range(MAX_FAILURES + 3):
        assert login(office, "bob").status_code == 302
    _fail(office, MAX_FAILURES - 1)
    assert login(office, "cy").status_code == 302


def test_ipv6_clients_are_throttled_by_their_64(app: Flask) -> None:
    _fail(_from(app, "2001:db8:0:1::1"), MAX_FAILURES // 2)
    _fail(_from(app, "2001:db8:0:1::2"), MAX_FAILURES - MAX_FAILURES // 2)
    assert login(_from(app, "2001:db8:0:1:ffff::3"), "bob").status_code == 429
    assert login(_from(app, "2001:db8:0:2::1"), "bob").status_code == 302


def test_a_forged_forwarded_for_does_not_escape_the_throttle(app: Flask) -> None:
    for i in range(MAX_FAILURES):
        _fail(_from(app, "203.0.113.9", forwarded=f"10.0.0.{i}"), 1)
    assert login(_from(app, "203.0.113.9", forwarded="10.9.9.9"), "bob").status_code == 429


def test_behind_a_trusted_proxy_clients_are_told_apart(config: Config) -> None:
    proxied = dataclasses.replace(
        config, admin=dataclasses.replace(config.admin, trusted_proxies=1)
    )
    app = create_app(proxied, secret_key="k" * 32)
    with db.database.connection_context():
        auth.create_user("bob", PASSWORD, "annotator")
    auth.limiter.reset()
    attacker = _from(app, "127.0.0.1", forwarded="203.0.113.9")
    _fail(attacker, MAX_FAILURES)
    assert login(attacker, "bob").status_code == 429
    assert login(_from(app, "127.0.0.1", forwarded="198.51.100.4"), "bob").status_code == 302


# ---------------------------------------------------------------- timing


class HashCalls:
    """Records every password check: the hash method and its parameters, i.e. the work."""

    def __init__(self, real: Callable[[str, str], bool]) -> None:
        self.real = real
        self.methods: list[str] = []

    def __call__(self, pwhash: str, password: str) -> bool:
        self.methods.append(pwhash.split("$", 1)[0])
        return self.real(pwhash, password)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> HashCalls:
    calls = HashCalls(auth.check_password_hash)
    monkeypatch.setattr(auth, "check_password_hash", calls)
    return calls


def test_an_unknown_name_costs_the_same_hash_as_a_real_one(
    app: Flask, hash_calls: HashCalls
) -> None:
    with db.database.connection_context():
        User.update(active=False).where(User.name == "cy").execute()
        bob_method = User.get(User.name == "bob").password_hash.split("$", 1)[0]
    work = {}
    for name in ("bob", "nobody", "cy"):  # real, unknown, deactivated
        hash_calls.methods.clear()
        client = _from(app, f"192.0.2.{len(work) + 1}")
        assert login(client, name, "wrong password").status_code == 401
        work[name] = list(hash_calls.methods)
    assert work["bob"] == [bob_method]
    assert work["nobody"] == work["bob"] and work["cy"] == work["bob"]


def test_the_dummy_hash_is_made_once_like_real_ones(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "PASSWORD_METHOD", "scrypt")  # the real default
    made: list[str] = []
    real = auth.generate_password_hash
    monkeypatch.setattr(
        auth, "generate_password_hash", lambda p, method: made.append(method) or real(p, method)
    )
    first, second = auth.dummy_hash(), auth.dummy_hash()
    assert first == second and first.startswith("scrypt:") and len(made) <= 1
    with db.database.connection_context():
        auth.create_user("dee", PASSWORD, "annotator")
        real_params = User.get(User.name == "dee").password_hash.split("$", 1)[0]
    assert first.split("$", 1)[0] == real_params  # same method, same cost parameters
