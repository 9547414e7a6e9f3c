"""A real browser (Debian's chromium, headless, driven by Playwright) against a real
server: the annotator's keyboard work, the save rules, the transcript states, delete
confirmation under the site's Content-Security-Policy, a configured question from the
config to the export, the filtered queue and the waveform. No request may leave the
site, and no page may log a console error (a script blocked by the CSP would).

Screenshots go to a temporary folder; with PARLEY_SCREENSHOTS=docs/img they refresh the
ones the docs show (docs/admin.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
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

from admin import settings
from admin.app import create_app
from admin.auth import create_user
from admin.models import Annotation, User
from admin.sample_data import PASSWORD as SAMPLE_PASSWORD
from admin.sample_data import seed
from parley import db
from parley.config import Config, load_config
from tests.admin.conftest import PASSWORD, T0, add_turn, same_store

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
SHOTS = os.environ.get("PARLEY_SCREENSHOTS")


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


def serve(app: Flask) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def seeded(app: Flask, config: Config, turns: int, media: int, annotators: int) -> Iterator[str]:
    """The app on a real HTTP server on a free port, with sample data, media for the
    oldest turns, and an annotator "tess" who has done nothing yet."""
    with db.database.connection_context():
        seed(turns, data_dir=config.data_dir, media_turns=media, annotators=annotators)
        create_user("tess", PASSWORD, "annotator")
    yield from serve(app)


@pytest.fixture
def site(app: Flask, config: Config) -> Iterator[str]:
    yield from seeded(app, config, 400, 30, 4)


@pytest.fixture
def small_site(app: Flask, config: Config) -> Iterator[str]:
    yield from seeded(app, config, 60, 6, 2)


class Watched:
    """A page whose requests and console are watched: nothing may leave the site, and
    nothing may fail (a script the CSP blocks logs an error)."""

    def __init__(self, browser: Any, site: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.site = site
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on(
            "console",
            lambda m: m.type == "error" and self.errors.append(f"{m.text} {m.location.get('url')}"),
        )
        self.page.on(
            "response",
            lambda r: (
                r.status >= 400 and r.status != 422 and self.errors.append(f"{r.status} {r.url}")
            ),
        )

    def _request(self, request: Any) -> None:
        if urlparse(request.url).hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def login(self, name: str, password: str = PASSWORD, then: str = "/") -> Any:
        page = self.page
        page.goto(f"{self.site}{then}")
        page.fill("#name", name)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.site}{then}")
        return page

    def close(self) -> None:
        self.context.close()
        assert self.foreign == [], f"requests left the site: {self.foreign}"
        assert self.errors == [], f"console errors or failed requests (CSP?): {self.errors}"


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name), full_page=True)
    if SHOTS:
        shutil.copyfile(folder / name, Path(SHOTS) / name)


def _mine(name: str, turn_id: str) -> Annotation | None:
    with db.database.connection_context():
        a = Annotation
        found = (
            a.select()
            .join(User, on=a.user == User.id)
            .where((a.turn == turn_id) & (User.name == name) & a.live())
        )
        return found.first()


def _current(page: Any) -> str:
    return str(page.locator("h5 code").first.inner_text())


def test_annotate_in_a_real_browser(browser: Any, site: str, tmp_path: Path) -> None:
    watched = Watched(browser, site)
    page = watched.page
    page.goto(f"{site}/queue/")
    assert "/login" in page.url  # the gate
    watched.login("tess", then="/queue/")

    page.goto(f"{site}/accuracy/")  # blind rating: an annotator sees no results
    assert page.locator("#blind").is_visible() and page.locator("#accuracy-table").count() == 0
    with db.database.connection_context():
        settings.put(settings.SHOW_RESULTS, True)  # an admin lets them see

    def annotations() -> int:
        page.goto(f"{site}/accuracy/")
        cell = page.locator("#accuracy-table tr[data-pipeline='all pipelines'] td").first
        return int(cell.inner_text().replace(",", ""))

    before = annotations()
    _shot(page, tmp_path, "admin-accuracy.png")
    page.goto(f"{site}/queue/")
    first = _current(page)
    assert page.locator("#queue-progress").inner_text().startswith("you: 0 of")

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
    page.keyboard.type("turn on the living room lamp please")
    assert page.locator("input[name=transcript_state][value=edited]").is_checked()
    _shot(page, tmp_path, "admin-queue.png")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _current(page) != first
    assert page.locator("#queue-progress").inner_text().startswith("you: 1 of")

    assert annotations() == before + 1  # the accuracy page changed
    page.goto(f"{site}/turns/{first}")
    assert page.locator("input[name=overall_score][value='2']").is_checked()
    assert (
        page.locator("#corrected_transcript").input_value() == "turn on the living room lamp please"
    )
    saved = _mine("tess", first)
    assert saved is not None and saved.transcript_state == "edited" and saved.done
    page.goto(f"{site}/latency/")
    assert page.locator("svg.chart").count() >= 2
    _shot(page, tmp_path, "admin-latency.png")
    page.goto(f"{site}/traces/{first}")
    assert page.locator("svg.chart line.mark-speech").count() == 1  # the end of speech
    _shot(page, tmp_path, "admin-trace.png")
    watched.close()


def test_save_rules_in_a_real_browser(browser: Any, small_site: str) -> None:
    watched = Watched(browser, small_site)
    page = watched.login("tess", then="/queue/")
    turn = _current(page)
    page.keyboard.press("Enter")  # an untouched form is not saved
    missing = page.locator("#form-missing")
    missing.wait_for(state="visible")
    assert "STT, LLM, TTS, Overall" in missing.inner_text()
    assert page.locator("fieldset.question.missing").count() == 4
    assert _current(page) == turn and _mine("tess", turn) is None
    for key in "444":
        page.keyboard.press(key)
    page.keyboard.press("Enter")  # one score left: still refused, and it says which
    assert missing.inner_text() == "Not saved: answer or mark n/a (n): Overall."
    assert _mine("tess", turn) is None
    page.keyboard.press("n")  # an explicit n/a is an answer
    with page.expect_navigation():
        page.keyboard.press("Enter")
    saved = _mine("tess", turn)
    assert saved is not None and saved.done
    assert (saved.stt_score, saved.overall_score, saved.not_applicable) == (
        4,
        None,
        ["overall_score"],
    )
    # the server applies the same rule when the script is bypassed
    bypassed = _current(page)
    with page.expect_navigation():
        page.evaluate("document.getElementById('annotation-form').submit()")
    assert (
        "Not saved: answer or mark n/a: STT, LLM, TTS, Overall"
        in page.locator("#form-problems").inner_text()
    )
    assert _mine("tess", bypassed) is None
    watched.errors = []  # the refused form's 422 is the point here
    watched.close()


def test_transcript_states_in_a_real_browser(browser: Any, small_site: str) -> None:
    watched = Watched(browser, small_site)
    page = watched.login("tess", then="/queue/")

    def save() -> str:
        turn = _current(page)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        return turn

    for key in "4444":  # scores only: the transcript is left, not a reference
        page.keyboard.press(key)
    left = _mine("tess", save())
    assert left is not None and left.transcript_state == "left"
    assert (left.corrected_transcript, left.word_count) == ("", None)

    for key in "4444t":  # t: the STT heard right: a reference with its own words
        page.keyboard.press(key)
    heard = page.locator("#corrected_transcript").get_attribute("data-heard")
    confirmed = _mine("tess", save())
    assert confirmed is not None and confirmed.transcript_state == "confirmed"
    assert confirmed.corrected_transcript == heard and confirmed.word_errors == 0

    for key in "4444":
        page.keyboard.press(key)
    page.keyboard.press("e")
    page.keyboard.press("Control+a")
    page.keyboard.type("please switch on the hall light")
    assert page.locator("input[name=transcript_state][value=edited]").is_checked()
    assert page.locator("#transcript-diff ins").count() >= 1  # the diff, while typing
    assert page.locator("#transcript-diff del").count() >= 1
    page.keyboard.press("Escape")
    edited = _mine("tess", save())
    assert edited is not None and edited.transcript_state == "edited"
    assert edited.corrected_transcript == "please switch on the hall light"
    assert edited.word_errors and edited.word_count == 6

    page.keyboard.press("e")  # typing back what the STT heard is not an edit
    page.keyboard.type(" x")
    assert page.locator("input[name=transcript_state][value=edited]").is_checked()
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    assert page.locator("input[name=transcript_state][value=left]").is_checked()
    assert page.locator("#transcript-diff").inner_text() == ""
    watched.close()


def test_delete_confirmation_works_under_the_csp(browser: Any, small_site: str) -> None:
    watched = Watched(browser, small_site)
    page = watched.login("tess", then="/queue/")
    for key in "3333":
        page.keyboard.press(key)
    turn = _current(page)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(f"{small_site}/turns/{turn}")
    page.click("#delete-mine")
    page.locator("#confirm").wait_for()  # a page that asks, not a blocked dialog
    page.click("#cancel")
    page.wait_for_url(f"{small_site}/turns/{turn}")
    assert _mine("tess", turn) is not None  # cancelled: kept
    page.click("#delete-mine")
    with page.expect_navigation():
        page.click("#confirm-button")
    assert _mine("tess", turn) is None
    assert page.locator("#delete-mine").count() == 0
    with db.database.connection_context():
        kept = Annotation.get((Annotation.turn == turn) & Annotation.deleted_at.is_null(False))
    assert kept.deleted_by.name == "tess"  # soft: kept, with who deleted it
    # somebody else's annotation: no way in for an annotator
    with db.database.connection_context():
        theirs = Annotation.select().where(Annotation.user != kept.user_id).first()
    response = page.goto(f"{small_site}/annotations/{theirs.id}/delete")
    assert response.status == 403
    watched.errors = []  # that 403 was the point
    watched.close()
    # an admin sees the deleted one, marked, with a way back
    admin = Watched(browser, small_site)
    page = admin.login("alice", SAMPLE_PASSWORD, then=f"/turns/{turn}")
    row = page.locator(f"#others tr[data-annotation='{kept.id}']")
    assert "deleted" in row.inner_text() and row.locator("button", has_text="restore").count()
    admin.close()


QUESTIONS = """
[annotation.questions.emotion]
label = "Emotion"
kind = "categorical"
choices = ["neutral", "happy", "sad", "angry"]
stage = "emotion"
bind = "emotion.label"
help = "how the user sounded"
"""


@pytest.fixture
def emotion_site(tmp_path: Path, config: Config) -> Iterator[str]:
    path = tmp_path / "parley.toml"
    path.write_text(QUESTIONS)
    configured = load_config(path, env=same_store(config))
    app = create_app(configured, secret_key="test-secret-key-" + "x" * 32)
    with db.database.connection_context():
        create_user("ada", PASSWORD, "admin")
    for i in range(3):
        add_turn(f"e{i}", created=T0 + dt.timedelta(minutes=i))
    with db.database.connection_context():
        db.Turn.update(outputs={"emotion": {"label": "happy"}}).where(
            db.Turn.id.in_(["e0", "e1"])
        ).execute()
    yield from serve(app)
    db.database.close()


def test_a_configured_question_from_config_to_queue_accuracy_and_export(
    browser: Any, emotion_site: str, tmp_path: Path
) -> None:
    watched = Watched(browser, emotion_site)
    page = watched.login("ada", then="/queue/")
    assert _current(page) == "e0"
    field = page.locator("fieldset[data-key=emotion]")
    assert field.get_attribute("data-stored") == "happy" and "stored: happy" in field.inner_text()
    for key in "4444":
        page.keyboard.press(key)
    assert field.evaluate("f => f.classList.contains('active')")  # the next question
    page.keyboard.press("3")  # sad: the stored "happy" was wrong
    assert page.locator("input[name=emotion][value=sad]").is_checked()
    assert "wrong" in field.locator("[data-verdict]").inner_text()
    _shot(page, tmp_path, "admin-question.png")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _current(page) == "e1"
    for key in "4444y":  # y: the stored value is right
        page.keyboard.press(key)
    assert page.locator("input[name=emotion][value=happy]").is_checked()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _current(page) == "e2"  # no stored emotion: the question is not asked
    assert page.locator("fieldset[data-key=emotion]").count() == 0

    page.goto(f"{emotion_site}/accuracy/")
    section = page.locator("section[data-question=emotion]")
    row = section.locator("tr[data-pipeline=alpha]")
    assert row.locator("td[data-label=sad]").inner_text() == "1"
    assert row.locator("td[data-label=happy]").inner_text() == "1"
    assert row.locator("td[data-accuracy]").inner_text() == "50.0 %"
    confusion = section.locator("table[data-confusion=emotion] tr[data-stored=happy]")
    assert confusion.locator("td[data-answer=sad]").inner_text() == "1"
    assert confusion.locator("td[data-answer=happy]").inner_text() == "1"

    response = page.request.get(f"{emotion_site}/export/annotations.csv")
    rows = {r["turn"]: r for r in csv.DictReader(io.StringIO(response.text()))}
    assert (rows["e0"]["q_emotion"], rows["e0"]["q_emotion_stored"]) == ("sad", "happy")
    assert rows["e0"]["q_emotion_correct"] == "False" and rows["e1"]["q_emotion_correct"] == "True"
    watched.close()


def test_annotate_keeps_the_whole_filter(browser: Any, small_site: str) -> None:
    watched = Watched(browser, small_site)
    page = watched.login("tess", then="/turns/")
    with db.database.connection_context():
        pipeline, device = (
            db.Turn.select(db.Turn.pipeline, db.Conversation.device)
            .join(db.Conversation)
            .where(db.Turn.status == "done")
            .tuples()
            .first()
        )
    page.select_option("#f-pipeline", pipeline)
    page.select_option("#f-device", device)
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    with page.expect_navigation():
        page.click("#annotate")
    assert f"pipeline={pipeline}" in page.url and f"device={device}" in page.url
    assert page.locator("#queue-filter").inner_text() == f"pipeline {pipeline} · device {device}"

    def matches(turn_id: str) -> bool:
        with db.database.connection_context():
            turn = db.Turn.get_by_id(turn_id)
            return turn.pipeline == pipeline and turn.conversation.device_id == device

    first = _current(page)
    assert matches(first)
    for key in "4444":
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert f"device={device}" in page.url  # the filter survives the save
    if page.locator("#queue-empty").count() == 0:
        assert _current(page) != first and matches(_current(page))
    watched.close()


def test_the_waveform_marks_speech_and_answers_clicks_and_keys(
    browser: Any, small_site: str, tmp_path: Path
) -> None:
    watched = Watched(browser, small_site)
    page = watched.login("tess", then="/queue/")  # the oldest turns have audio
    wave = page.locator("#waveform")
    page.wait_for_selector("#waveform[data-ready='1']")
    assert page.evaluate(
        "() => !!document.querySelector('#waveform > div').shadowRoot.querySelector('canvas')"
    )
    start, end = (
        float(wave.get_attribute("data-speech-start")),
        float(wave.get_attribute("data-speech-end")),
    )
    regions = page.evaluate(
        "() => window.parleyWaveform.getActivePlugins()[0].getRegions()"
        ".map(r => [r.id, r.start, r.end])"
    )
    assert ["speech", start, end] in [[r[0], round(r[1], 3), round(r[2], 3)] for r in regions]
    box = wave.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    duration = page.evaluate("document.getElementById('audio-input').duration")
    at = page.evaluate("document.getElementById('audio-input').currentTime")
    assert abs(at - 0.75 * duration) < 0.25 * duration  # click-to-seek
    page.keyboard.press("]")
    assert page.evaluate("document.getElementById('audio-input').playbackRate") == 1.25
    assert page.locator("#speed").inner_text() == "1.25\u00d7"
    page.keyboard.press("[")
    page.keyboard.press("[")
    assert page.evaluate("document.getElementById('audio-input').playbackRate") == 0.75
    page.keyboard.press("b")  # replay from the start of speech
    page.wait_for_function("() => !document.getElementById('audio-input').paused")
    replayed = page.evaluate("document.getElementById('audio-input').currentTime")
    assert start - 0.01 <= replayed < start + 1.0
    page.keyboard.press("Space")
    _shot(page, tmp_path, "admin-turn.png")
    watched.close()
