"""The Compare page and the blind A/B queue in a real browser (Debian's chromium driven
by Playwright, as tests/admin/test_browser.py): an admin chooses runs, reads the item
table with its diffs, plays an answer, filters by tag and sends two runs to an
annotator, who judges every pair with the keyboard; the preferences then show on the
Compare page. No request leaves the site and no page logs an error (the CSP).

With PARLEY_SCREENSHOTS=docs/img the screenshots refresh those docs/admin.md shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from admin.models import Preference, Queue
from parley import db
from parley.config import Config
from tests.admin.compare_store import WORD, Seeded, seed
from tests.admin.conftest import user_id
from tests.admin.test_browser import Watched, _shot, serve
from tests.admin.test_browser import browser as browser  # a fixture


@pytest.fixture
def compare_site(app: Flask, config: Config) -> Iterator[tuple[str, Seeded]]:
    seeded = seed(config.data_dir)
    for url in serve(app):
        yield url, seeded


def _run_of(text: str) -> str:
    return next(run for run, word in WORD.items() if text.startswith(word))


def test_compare_and_judge_pairs_in_a_real_browser(
    browser: Any, compare_site: tuple[str, Seeded], tmp_path: Path
) -> None:
    site, seeded = compare_site
    admin = Watched(browser, site)
    page = admin.login("ada", then="/compare/")
    assert page.locator("#choose-runs").is_visible()
    page.check(f"#run-{seeded.runs['run-local']}")
    page.check(f"#run-{seeded.runs['run-cloud']}")
    with page.expect_navigation():
        page.click("#compare-button")
    assert page.locator("#compare-items tbody tr, #compare-items tr[data-item]").count() == 4
    assert page.locator("[data-total='compare.items']").inner_text() == "4"
    # the transcript is diffed against the reference: cloud dropped the "a" of the timer
    timer = page.locator("tr[data-item='timer'] td[data-run='run-cloud'] .heard")
    assert timer.get_attribute("data-diffed") == "1"
    assert timer.locator("del").all_inner_texts() == ["a "]
    # an answer plays, and only one plays at a time
    audios = page.locator("#compare-items audio")
    assert audios.count() == 8
    page.evaluate("document.querySelectorAll('#compare-items audio')[0].play()")
    page.wait_for_function(
        "() => document.querySelectorAll('#compare-items audio')[0].currentTime > 0.1"
    )
    page.evaluate("document.querySelectorAll('#compare-items audio')[1].play()")
    page.wait_for_function("() => document.querySelectorAll('#compare-items audio')[0].paused")
    link = page.locator("tr[data-item='lamp'] td[data-run='run-local'] a[data-link='turn']")
    assert link.get_attribute("href") == "/turns/run-local-lamp"
    # the tag filter
    page.select_option("#f-tag", "lights")
    with page.expect_navigation():
        page.click("#tag-filter button[type=submit]")
    assert page.locator("#compare-items tr[data-item]").count() == 2
    assert page.locator("#compare-tag").inner_text() == "lights"

    # send the two runs to bob as a blind A/B queue
    page.goto(f"{site}/compare/?run={seeded.runs['run-local']}&run={seeded.runs['run-cloud']}")
    page.click("#make-pair-queue summary")
    page.fill("#pair-queue-form input[name=name]", "kitchen A/B")
    page.check(f"#pair-queue-form input[name=assignee][value='{user_id('bob')}']")
    with page.expect_navigation():
        page.click("#pair-queue-form button[type=submit]")
    assert "Queue 'kitchen A/B' made" in page.content()
    with db.database.connection_context():
        queue_id = Queue.get(Queue.name == "kitchen A/B").id

    bob = Watched(browser, site)
    judge = bob.login("bob", then=f"/queue/{queue_id}/")
    preferred: dict[int, str] = {}  # item id: the run whose answer bob chose
    for n in range(4):
        item = int(judge.locator("#pairwise").get_attribute("data-item") or 0)
        body = judge.content()
        assert "run-local" not in body and "run-cloud" not in body  # blind
        judge.keyboard.press("1")  # play answer A
        judge.wait_for_function("() => document.getElementById('audio-A').currentTime > 0.1")
        choice = "a" if n % 2 == 0 else "b"
        judge.keyboard.press(choice)
        side = choice.upper()
        assert judge.locator(f"input[name=choice][value={side}]").is_checked()
        assert "chosen" in (judge.locator(f"#answer-{side}").get_attribute("class") or "")
        preferred[item] = _run_of(judge.locator(f"[data-answer={side}]").inner_text())
        if n == 0:
            _shot(judge, tmp_path, "admin-pairwise.png")
        with judge.expect_navigation():
            judge.keyboard.press("Enter")
    assert judge.locator("#queue-empty").is_visible()

    with db.database.connection_context():
        rows = list(Preference.select())
    assert len(rows) == 4
    low = min(seeded.runs["run-local"], seeded.runs["run-cloud"])
    name_of = {v: k for k, v in seeded.runs.items()}
    for p in rows:
        assert p.run_a_id == low
        assert name_of[p.run_a_id if p.choice == "a" else p.run_b_id] == preferred[p.item_id]
    wins = sum(1 for run in preferred.values() if run == "run-local")

    page.goto(f"{site}/compare/?run={seeded.runs['run-local']}&run={seeded.runs['run-cloud']}")
    row = page.locator("#compare-preferences tr[data-pair='run-local|run-cloud']")
    assert row.locator("[data-total^='compare.preferences.']").inner_text() == "4"
    assert row.locator("[data-total^='compare.prefer_a.']").inner_text() == str(wins)
    assert row.locator("[data-total^='compare.prefer_b.']").inner_text() == str(4 - wins)
    _shot(page, tmp_path, "admin-compare.png")
    bob.close()
    admin.close()
