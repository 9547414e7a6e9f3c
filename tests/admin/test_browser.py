"""A real browser (Debian's chromium, headless, driven by Playwright) against a real
server: log in, open the queue, play the audio, score with the keyboard, save and go to
the next turn, and see the accuracy page change. No request may leave the site.

Screenshots go to a temporary folder; with PARLEY_SCREENSHOTS=docs/img they refresh the
ones the docs show (docs/admin.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from flask import Flask
from werkzeug.serving import make_server

from admin.auth import create_user
from admin.sample_data import seed
from parley import db
from parley.config import Config
from tests.admin.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap.sh does)")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        except Exception as exc:
            pytest.skip(f"chromium does not start here: {exc}")
        yield launched
        launched.close()


@pytest.fixture
def site(app: Flask, config: Config) -> Iterator[str]:
    """The app on a real HTTP server on a free port, with sample data and media."""
    with db.database.connection_context():
        seed(400, data_dir=config.data_dir, media_turns=30, annotators=4, seed_value=7)
        create_user("tess", PASSWORD, "annotator")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name), full_page=True)


def test_annotate_in_a_real_browser(browser: Any, site: str, tmp_path: Path) -> None:
    shots = tmp_path / "img"
    shots.mkdir()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    foreign: list[str] = []
    errors: list[str] = []

    def request(r: Any) -> None:
        if urlparse(r.url).hostname != "127.0.0.1":
            foreign.append(r.url)

    def console(m: Any) -> None:
        if m.type == "error":
            errors.append(m.text)

    def response(r: Any) -> None:
        if r.status >= 400:
            errors.append(f"{r.status} {r.url}")

    page.on("request", request)
    page.on("console", console)
    page.on("response", response)

    page.goto(f"{site}/queue/")
    assert "/login" in page.url  # the gate
    page.fill("#name", "tess")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site}/queue/")

    def annotations() -> int:
        page.goto(f"{site}/accuracy/")
        cell = page.locator("#accuracy-table tr[data-pipeline='all pipelines'] td").first
        return int(cell.inner_text().replace(",", ""))

    before = annotations()
    _shot(page, shots, "admin-accuracy.png")
    page.goto(f"{site}/queue/")
    first = page.locator("h5 code").first.inner_text()
    assert page.locator("#queue-progress").inner_text().startswith("you: 0 of")
    _shot(page, shots, "admin-queue.png")

    # play the user's speech with the keyboard
    page.keyboard.press("q")
    page.wait_for_function("() => document.getElementById('audio-input').currentTime > 0.2")
    assert page.evaluate("document.getElementById('audio-input').paused") is False
    page.keyboard.press("Space")  # pause
    assert page.evaluate("document.getElementById('audio-input').paused") is True

    # score STT, LLM, TTS, overall with four digits; correct the transcript; save and next
    for key in "4352":
        page.keyboard.press(key)
    checked = page.evaluate(
        "['stt_score','llm_score','tts_score','overall_score'].map("
        "n => document.querySelector(`input[name=${n}]:checked`).value)"
    )
    assert checked == ["4", "3", "5", "2"]
    page.keyboard.press("e")
    page.keyboard.press("Control+a")
    page.keyboard.type("turn on the living room lamp")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h5 code").first.inner_text() != first
    assert page.locator("#queue-progress").inner_text().startswith("you: 1 of")

    assert annotations() == before + 1  # the accuracy page changed
    page.goto(f"{site}/turns/{first}")
    assert page.locator("input[name=overall_score][value='2']").is_checked()
    assert page.locator("#corrected_transcript").input_value() == "turn on the living room lamp"
    _shot(page, shots, "admin-turn.png")
    page.goto(f"{site}/latency/")
    assert page.locator("svg.chart").count() >= 2
    _shot(page, shots, "admin-latency.png")
    page.goto(f"{site}/traces/{first}")
    _shot(page, shots, "admin-trace.png")

    assert foreign == [], f"requests left the site: {foreign}"
    assert errors == [], f"console errors (CSP?): {errors}"
    context.close()
    target = os.environ.get("PARLEY_SCREENSHOTS")
    if target:
        for shot in shots.iterdir():
            shutil.copyfile(shot, Path(target) / shot.name)
