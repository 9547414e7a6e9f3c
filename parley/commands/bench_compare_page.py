"""The admin's Compare page timed over HTTP, for `parley bench replay`.

The admin app is served by waitress on a free loopback port, as `parley admin serve`
serves it, over the store the benchmark seeded (research/sample_runs.py); a client logs
in through the real login form (session cookie, CSRF token) and times whole responses:
the request, the comparison (research/compare.py), the templates and charts, and
reading every byte of the page. Timed: the first visit (a cold comparison), then
``repeat`` visits of each page after one warm-up, median reported: the first page of
item rows with the bootstrap computed on each visit (its in-process cache emptied), the
same page again (intervals cached, as a reload gets them), one tag's page, the last page
of item rows, and the page's JSON.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import secrets
import statistics
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from parley.config import Config

BENCH_USER = "bench-admin"
MARKER = b'id="compare-items"'  # the item table: the page rendered whole


class _Client:
    def __init__(self, site: str) -> None:
        self.site = site
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str) -> bytes:
        with self.opener.open(self.site + path, timeout=120) as response:
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            return bytes(response.read())

    def login(self, name: str, password: str) -> None:
        form = self.get("/login").decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
        assert token is not None, "no CSRF token on the login page"
        data = urllib.parse.urlencode(
            {"name": name, "password": password, "csrf_token": token.group(1)}
        ).encode()
        with self.opener.open(self.site + "/login", data=data, timeout=60) as response:
            response.read()
        if b'id="whoami"' not in self.get("/"):
            raise RuntimeError("the benchmark's login failed")


def _timed(client: _Client, path: str, repeat: int, *, cached: bool) -> dict[str, Any]:
    from research import stats

    client.get(path)  # warm-up
    times, size = [], 0
    for _ in range(repeat):
        if not cached:
            stats.forget()
        start = time.perf_counter()
        body = client.get(path)
        times.append((time.perf_counter() - start) * 1000.0)
        size = len(body)
        if path.startswith("/compare/?") and MARKER not in body:
            raise RuntimeError(f"{path} did not render the comparison")
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "kb": round(size / 1024, 1),
    }


def compare_page_times(
    config: Config, runs: Sequence[str], items: int, repeat: int, tag: str = "lights"
) -> dict[str, Any]:
    """Times of the Compare page of ``runs`` (seeded, ``items`` each) over HTTP; the
    store must be open."""
    import waitress

    from admin.app import create_app
    from admin.auth import create_user
    from admin.compare_page import PAGE_ROWS
    from research import stats

    app = create_app(config, secret_key=os.urandom(24).hex())
    password = secrets.token_urlsafe(16)
    create_user(BENCH_USER, password, "admin")
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8, ident="bench")
    thread = threading.Thread(target=server.run, name="bench-admin-http", daemon=True)
    thread.start()
    try:
        client = _Client(f"http://127.0.0.1:{server.effective_port}")  # type: ignore[union-attr]
        client.login(BENCH_USER, password)
        query = urllib.parse.urlencode([("run", r) for r in runs])
        page = f"/compare/?{query}"
        last = -(-items // PAGE_ROWS)
        stats.forget()
        start = time.perf_counter()
        client.get(page)
        first_ms = (time.perf_counter() - start) * 1000.0
        return {
            "served_by": "waitress (8 threads), loopback HTTP",
            "rows_per_page": PAGE_ROWS,
            "first_visit_ms": round(first_ms, 1),
            "page": _timed(client, page, repeat, cached=False),
            "page_again": _timed(client, page, repeat, cached=True),
            "one_tag": _timed(client, f"{page}&tag={tag}", repeat, cached=False),
            "last_page": _timed(client, f"{page}&page={last}", repeat, cached=False),
            "json": _timed(client, f"/compare/data.json?{query}", repeat, cached=False),
        }
    finally:
        server.close()  # type: ignore[union-attr]
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        thread.join(timeout=10)
