"""Odd values in every URL and query string of the admin get a page or a 4xx on SQLite
and on PostgreSQL alike, never a server error (PostgreSQL is strict where SQLite lets
anything through: NUL characters, over-long text, non-numbers in number columns)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.admin.test_auth import _seed_for_every_route, _urls

# One of each kind: not a number, negative, beyond 64 bits, a digit int() refuses, NUL,
# longer than any column.
ODD_VALUES = ["abc", "-1", "99999999999999999999", "²", "a\x00b", "x" * 5000]
QUERY_KEYS = ["id", "page", "pipeline", "device", "conversation", "status", "from", "to",
              "annotated", "error", "q", "group", "order", "after", "sort", "desc", "search",
              "flt0_0", "page_size", "url", "run", "dataset", "tag"]  # fmt: skip


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_odd_values_never_cause_a_server_error(
    app: Flask, admin_client: FlaskClient, value: str
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # collect every 500 instead of the first
    seeded = _seed_for_every_route()
    routes = _urls(app, {name: quote(value, safe="") for name in seeded})
    query = "?" + "&".join(f"{key}={quote(value, safe='')}" for key in QUERY_KEYS)
    failures = []
    for endpoint, url, methods in routes:
        if "GET" not in methods or endpoint in ("auth.logout", "static"):
            continue
        # the value in the path (where the route takes one) and in every query argument
        response = admin_client.get(url + query)
        response.get_data()
        if response.status_code >= 500:
            failures.append((url, response.status_code))
    assert not failures
