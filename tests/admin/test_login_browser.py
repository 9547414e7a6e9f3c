"""The reported open redirect, in a real browser (Debian's chromium): logging in with
``next=%2F%09%2Fevil.example`` and its kin lands on the site, and nothing is requested
from another host. A safe ``next`` is followed, so the check can tell the difference."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from tests.admin.conftest import PASSWORD
from tests.admin.test_browser import browser, site, sync_api  # noqa: F401 - the fixtures

HOSTILE = [
    "%2F%09%2Fevil.example",  # the reported case: "/", tab, "/evil.example"
    "%2F%0A%2Fevil.example",
    "%2F%5Cevil.example",
    "%5C%5Cevil.example",
    "%2F%2Fevil.example",
    "https%3A%2F%2Fevil.example%2F",
    "%2F%252F%252Fevil.example",
]


def test_a_browser_logging_in_never_leaves_the_site(browser: Any, site: str) -> None:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    foreign: list[str] = []

    def only_the_site(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_site)

    def log_in(next_query: str) -> str:
        context.clear_cookies()
        page.goto(f"{site}/login?next={next_query}")
        page.fill("#name", "tess")
        page.fill("#password", PASSWORD)
        try:
            with page.expect_navigation():
                page.click("button[type=submit]")
        except sync_api.Error:  # the navigation went off the site and was aborted
            return "off the site"
        return str(page.url)

    for query in HOSTILE:
        landed = log_in(query)
        assert foreign == [], f"next={query} sent the browser to {foreign}"
        assert (urlparse(landed).hostname, urlparse(landed).path) == ("127.0.0.1", "/"), query
    assert urlparse(log_in("%2Flatency%2F")).path == "/latency/"  # a safe one is followed
    context.close()
