"""`parley admin ...` and `parley bench admin`, through the real entry point."""

from __future__ import annotations

import asyncio
import json
import os
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
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
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
    assert result["turns"] == 300 and result["annotations"] > 300 and result["spans"] == 1800
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


def test_create_user_without_a_terminal_or_the_variable_says_what_to_do(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under a service manager or a pipe there is nobody to type the password."""
    monkeypatch.delenv("PARLEY_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["admin", "create-user", "ann"]) == 2
    err = capsys.readouterr().err
    assert "no terminal" in err and "PARLEY_ADMIN_PASSWORD" in err and "Traceback" not in err


def test_create_user_without_a_terminal_in_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PARLEY_ADMIN_PASSWORD"}
    env["PARLEY_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "parley", "admin", "create-user", "ann"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "set PARLEY_ADMIN_PASSWORD" in done.stderr and "Traceback" not in done.stderr


def test_seed_sample_fills_an_empty_store_with_media_under_the_data_directory(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = home / "cwd"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # media must not land in the working directory
    assert main(["admin", "seed-sample", "--turns", "40", "--media-turns", "5"]) == 0
    out = capsys.readouterr().out
    assert "added 40 sample turns (5 with audio" in out and "sample-password" in out
    config = load_config()
    db.open_database(config.database_url)
    with db.database.connection_context():
        assert db.Turn.select().count() == 40
        paths = [m.path for m in db.Media.select()]
        assert User.select().where(User.role == "admin").count() == 1
    assert len(paths) == 15  # input, output, a frame each
    assert all((config.data_dir / p).is_file() for p in paths)
    assert list(elsewhere.iterdir()) == []
    # a store with turns is not mixed with sample data unless asked
    assert main(["admin", "seed-sample", "--turns", "5"]) == 2
    assert "already holds 40 turns" in capsys.readouterr().err
    assert main(["admin", "seed-sample", "--turns", "5", "--media-turns", "0", "--force"]) == 0


def test_parley_up_says_when_nobody_can_log_in(home: Path) -> None:
    from parley.commands.up import _accounts_note

    config = load_config()
    assert "no admin accounts yet" in _accounts_note(config)
    assert "parley admin create-user NAME --role admin" in _accounts_note(config)
    db.open_database(config.database_url)
    with db.database.connection_context():
        auth.create_user("ann", "a long password", "admin")
    assert _accounts_note(config) == ""


def test_the_readme_names_recordings_that_exist() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    named = re.findall(r"--wav (\S+\.wav)", readme)
    assert named and all((root / name).is_file() for name in named), named
