"""`parley admin ...` and `parley bench admin`, through the real entry point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from werkzeug.security import check_password_hash

from admin import auth
from admin.models import User
from parley import db
from parley.cli import build_parser, main
from parley.commands import admin as admin_command
from parley.commands.launcher import LocalStack
from parley.config import load_config


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(auth, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    return tmp_path


def test_admin_commands_parse() -> None:
    args = build_parser().parse_args(["admin", "create-user", "ann", "--role", "admin"])
    assert (args.admin_command, args.name, args.role, args.update) == (
        "create-user",
        "ann",
        "admin",
        False,
    )
    args = build_parser().parse_args(["admin", "serve", "--listen", "0.0.0.0:8000"])
    assert (args.admin_command, args.listen) == ("serve", "0.0.0.0:8000")
    args = build_parser().parse_args(["bench", "admin", "--turns", "500", "--json"])
    assert (args.bench_command, args.turns, args.repeat, args.json) == ("admin", 500, 7, True)
    assert build_parser().parse_args(["bench", "admin"]).turns == 100_000
    with pytest.raises(SystemExit):
        build_parser().parse_args(["admin", "create-user", "ann", "--role", "root"])


def test_create_user_reads_the_password_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARLEY_ADMIN_PASSWORD", "a long password")
    assert main(["admin", "create-user", "ann", "--role", "admin"]) == 0
    assert "created admin 'ann'" in capsys.readouterr().out
    assert main(["admin", "create-user", "ann"]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    monkeypatch.setenv("PARLEY_ADMIN_PASSWORD", "another long one")
    assert main(["admin", "create-user", "ann", "--role", "annotator", "--update"]) == 0
    monkeypatch.setenv("PARLEY_ADMIN_PASSWORD", "short")
    assert main(["admin", "create-user", "bo"]) == 2
    assert "at least 8" in capsys.readouterr().err
    db.open_database(load_config().database_url)
    with db.database.connection_context():
        ann = User.get(User.name == "ann")
        assert not User.select().where(User.name == "bo").exists()
    assert ann.role == "annotator" and check_password_hash(ann.password_hash, "another long one")
    assert main(["admin", "users"]) == 0
    assert "ann" in capsys.readouterr().out


def test_create_user_prompts_twice_without_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_ADMIN_PASSWORD", raising=False)
    answers = iter(["typed password", "typed passworD"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["admin", "create-user", "cy"]) == 2  # they differ
    answers = iter(["typed password", "typed password"])
    assert main(["admin", "create-user", "cy"]) == 0


def test_bench_admin_times_the_pages(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = home / "bench.json"
    assert (
        main(["bench", "admin", "--turns", "300", "--repeat", "1", "--json", "--output", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["turns"] == 300 and result["annotations"] > 300 and result["spans"] == 1500
    assert set(result["pages"]) >= {"latency_summary", "accuracy_summary", "queue"}
    assert all(page["median_ms"] > 0 for page in result["pages"].values())
    assert json.loads(capsys.readouterr().out) == result


def test_parley_up_skips_the_admin_without_the_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = LocalStack(load_config(), ["tiny"])
    monkeypatch.setattr(admin_command, "available", lambda: False)
    address, state = asyncio.run(admin_command.start_with(stack))
    assert address == "127.0.0.1:50080" and "parley[admin]" in state
    assert not stack.started


def test_http_up_on_a_closed_port() -> None:
    assert admin_command.http_up("http://127.0.0.1:9/", timeout=0.2) is False


def test_parley_up_starts_the_admin_process_and_stops_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PARLEY_ADMIN_PORT", str(port))
    monkeypatch.setenv("PARLEY_ADMIN_SECRET_KEY", "s" * 32)
    stack = LocalStack(load_config(), ["tiny"])
    try:
        address, state = asyncio.run(admin_command.start_with(stack))
        assert (address, state) == (f"127.0.0.1:{port}", "started")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as page:
            assert b"Parley bench" in page.read()
        assert asyncio.run(admin_command.start_with(stack))[1] == "already running"
    finally:
        stack.stop()
    assert not admin_command.http_up(f"http://127.0.0.1:{port}/login")
