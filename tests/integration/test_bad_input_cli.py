"""Bad input at the command line gets one clear error line, never a traceback (the real
`parley` command in a subprocess): out-of-range settings and ports, malformed
addresses and tables, an unknown engine, a PostgreSQL URL without its driver; and
`parley doctor` reads the store without upgrading it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

BLOCK_PSYCOPG = 'raise ImportError("blocked by the test", name="{name}")\n'


def parley(home: Path, *args: str, toml: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    config = home / "parley.toml"
    config.write_text(toml)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI_"))}
    environ.update(PARLEY_HOME=str(home / "home"), **env)
    return subprocess.run(
        [sys.executable, "-m", "parley", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=home,
        timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("command", "toml", "expected"),
    [
        ("doctor", "[vad]\nthreshold = 1.5\n", "[vad] threshold = 1.5: must be from 0 to 1"),
        ("server", "[vad]\nmax_turn_s = 0\n", "[vad] max_turn_s = 0.0: must be more than 0"),
        ("doctor", "[vad]\nneg_threshold = 0.9\n", "[vad] neg_threshold = 0.9 must not be"),
        ("server", "[vad]\nbatch_interval_ms = -3\n", "[vad] batch_interval_ms = -3.0: must be"),
        ("doctor", "[server]\nstt_timeout_s = -1\n", "[server] stt_timeout_s = -1.0: must be"),
        ("doctor", "[server]\nport = -1\n", "[server] port = -1: must be from 0 to 65535"),
        (
            "doctor",
            '[pools.my]\nstage = "stt"\nengine = "instant"\naddresses = ["127.0.0.1:99999"]\n',
            "[pools.my] addresses: '127.0.0.1:99999': the port must be from 1 to 65535",
        ),
        (
            "server",
            '[pools.my]\nstage = "stt"\nengine = "instant"\naddresses = ["not an address"]\n',
            "[pools.my] addresses: 'not an address' is not HOST:PORT",
        ),
        ("doctor", "[pipelines]\nx = 5\n", "[pipelines.x] must be a table of stages"),
    ],
)
def test_a_bad_setting_stops_the_command_with_one_line(
    tmp_path: Path, command: str, toml: str, expected: str
) -> None:
    line = one_line_error(parley(tmp_path, command, toml=toml))
    assert line.startswith("parley: error: ") and expected in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("server", "--listen", "127.0.0.1:99999"), "the port must be from 0 to 65535"),
        (("server", "--listen", "nowhere"), "'nowhere' is not HOST:PORT"),
        (("worker", "stt", "--engine", "instant", "--listen", "h:70000"), "from 0 to 65535"),
        (("admin", "serve", "--listen", "::1:8080"), "write an IPv6 address in brackets"),
        (("edge", "--server", "127.0.0.1:0"), "the port must be from 1 to 65535"),
    ],
)
def test_a_bad_address_on_the_command_line_is_refused_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    line = one_line_error(parley(tmp_path, *args))
    assert f"argument {args[-2]}: " in line and expected in line


def test_doctor_names_an_unknown_engine_of_the_default_pipeline(tmp_path: Path) -> None:
    toml = (
        '[pools.my]\nstage = "stt"\nengine = "wubble"\naddresses = ["127.0.0.1:1"]\n'
        '[pipelines.tiny]\nstt = { pool = "my" }\n'
    )
    result = parley(tmp_path, "doctor", toml=toml, PARLEY_BASE_PORT="29900")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = next(line for line in result.stdout.splitlines() if "pipeline tiny" in line)
    assert "FAIL" in line and "unknown stt engine 'wubble'" in line
    assert "instant" in line  # the engines it knows
    assert "cannot run yet: fix pipeline tiny" in result.stdout


@pytest.fixture
def no_psycopg(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH under which psycopg2 and psycopg 3 fail to import, as without the
    postgres extra (whatever this machine has installed)."""
    for name in ("psycopg2", "psycopg"):
        package = tmp_path / "blocked" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(BLOCK_PSYCOPG.format(name=name))
    return {
        "PYTHONPATH": str(tmp_path / "blocked"),
        "PARLEY_STORE_DATABASE_URL": "postgresql://parley:secret@127.0.0.1:1/parley",
    }


@pytest.mark.parametrize("args", [("db", "status"), ("server",), ("device", "list")])
def test_postgresql_without_its_driver_says_which_extra(
    tmp_path: Path, no_psycopg: dict[str, str], args: tuple[str, ...]
) -> None:
    line = one_line_error(parley(tmp_path, *args, **no_psycopg))
    assert (
        line == "parley: error: PostgreSQL needs the postgres extra: pip install 'parley[postgres]'"
    )


def test_doctor_says_which_extra_postgresql_needs(
    tmp_path: Path, no_psycopg: dict[str, str]
) -> None:
    result = parley(tmp_path, "doctor", PARLEY_BASE_PORT="29900", **no_psycopg)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    database = next(i for i, line in enumerate(lines) if " database " in line)
    assert "FAIL" in lines[database] and "secret" not in result.stdout
    assert "PostgreSQL needs the postgres extra" in lines[database]
    assert lines[database + 1].strip() == "-> pip install 'parley[postgres]'"


def test_doctor_reports_an_old_schema_and_leaves_it_alone(tmp_path: Path) -> None:
    assert parley(tmp_path, "db", "upgrade").returncode == 0
    path = tmp_path / "home" / "parley.db"
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM schema_migration WHERE name = 'i13-turn-outputs'")
    result = parley(tmp_path, "doctor", PARLEY_BASE_PORT="29900")
    assert "database upgraded" not in result.stderr, result.stderr
    line = next(line for line in result.stdout.splitlines() if " database " in line)
    assert "warn" in line and "schema out of date" in line and "i13-turn-outputs" in line
    assert "parley db upgrade" in result.stdout
    with sqlite3.connect(path) as connection:
        names = {name for (name,) in connection.execute("SELECT name FROM schema_migration")}
    assert "i13-turn-outputs" not in names  # still pending: the doctor did not migrate


def test_doctor_does_not_create_the_store(tmp_path: Path) -> None:
    result = parley(tmp_path, "doctor", PARLEY_BASE_PORT="29900")
    assert "not created yet" in result.stdout and "database upgraded" not in result.stderr
    assert not (tmp_path / "home" / "parley.db").exists()
