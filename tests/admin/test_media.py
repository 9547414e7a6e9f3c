"""Turn media: served to logged-in users, only files the store recorded, never a path
outside the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.views.media import resolve
from parley import db
from parley.config import Config
from tests.admin.conftest import add_turn


@pytest.fixture
def stored(app: Flask, config: Config) -> Path:
    """One turn with an input WAV under the data dir, and a secret file beside the dir."""
    add_turn("t1")
    wav = config.data_dir / "turns/t1/input.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    (config.data_dir / "turns/t1/unlisted.wav").write_bytes(b"RIFF not recorded")
    (config.data_dir.parent / "secret.txt").write_text("top secret")
    with db.database.connection_context():
        db.Media.create(turn="t1", kind="input", path="turns/t1/input.wav", bytes=1028)
    return wav


def test_media_is_served_to_logged_in_users_with_ranges(stored: Path, bob: FlaskClient) -> None:
    response = bob.get("/media/turns/t1/input.wav")
    assert response.status_code == 200
    assert response.data == stored.read_bytes()
    assert response.mimetype == "audio/wav"
    partial = bob.get("/media/turns/t1/input.wav", headers={"Range": "bytes=4-9"})
    assert partial.status_code == 206 and partial.data == bytes(range(6))


def test_media_needs_a_session(stored: Path, app: Flask) -> None:
    response = app.test_client().get("/media/turns/t1/input.wav")
    assert response.status_code == 401
    assert b"RIFF" not in response.data


@pytest.mark.parametrize(
    "url",
    [
        "/media/../secret.txt",
        "/media/turns/../../secret.txt",
        "/media/..%2fsecret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/turns/t1/..%2f..%2f..%2fsecret.txt",
        "/media//etc/passwd",
        "/media/%2fetc%2fpasswd",
        "/media/turns/t1/unlisted.wav",  # inside the data dir, but not a stored medium
        "/media/turns/t1/input.wav%00.txt",
    ],
)
def test_media_paths_outside_the_store_are_refused(
    stored: Path, bob: FlaskClient, url: str
) -> None:
    response = bob.get(url, follow_redirects=True)  # werkzeug merges "//" with a redirect
    assert response.status_code == 404, url
    assert b"top secret" not in response.data and b"root:" not in response.data


def test_a_media_row_pointing_outside_the_data_dir_is_refused(
    stored: Path, config: Config, bob: FlaskClient
) -> None:
    with db.database.connection_context():
        db.Media.create(turn="t1", kind="frame", path="../secret.txt", mime="text/plain")
        db.Media.create(turn="t1", kind="frame", path=str(config.data_dir.parent / "secret.txt"))
        db.Media.create(turn="t1", kind="frame", path="/etc/passwd")
    for url in (
        "/media/../secret.txt",
        f"/media/{config.data_dir.parent / 'secret.txt'}",
        "/media//etc/passwd",
    ):
        response = bob.get(url, follow_redirects=True)
        assert response.status_code == 404, url
        assert b"top secret" not in response.data


def test_resolve_keeps_paths_inside_the_data_dir(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert resolve(root, "a/b.wav") == (root / "a/b.wav").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "", ".", "a/\x00b", "link/secret"):
        assert resolve(root, bad) is None, bad
