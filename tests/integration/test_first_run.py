"""A first run that never stalls: `parley doctor` (a missing model, a busy port),
`base_port`, and `parley edge --wav` when the pipeline's workers are down (a real server
process, the real command)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from parley.cli import main
from parley.commands.launcher import stack_specs
from parley.config import load_config

LAMP = (
    Path(__file__).resolve().parents[2] / "parley" / "assets" / "turn_on_the_living_room_lamp.wav"
)
OFFSETS = (1, 11, 12, 13, 21, 22, 23, 30)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base() -> int:
    """A base port whose server, tiny/local workers and admin ports are all free."""
    for _ in range(200):
        base = random.randrange(20000, 40000, 100)
        if all(_free(base + offset) for offset in OFFSETS):
            return base
    raise RuntimeError("no free base port")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARLEY_BASE_PORT", str(free_base()))
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_base_port_moves_every_port_that_is_not_set_one_by_one(home: Path) -> None:
    config = load_config(env={"PARLEY_HOME": str(home), "PARLEY_BASE_PORT": "23000"})
    assert (config.server.port, config.admin.port, config.edge.server) == (
        23001,
        23030,
        "127.0.0.1:23001",
    )
    specs = {s.name: s.address for s in stack_specs(config, ["tiny", "local"])}
    assert specs == {
        "server": "127.0.0.1:23001",
        "tiny-stt": "127.0.0.1:23011",
        "tiny-llm": "127.0.0.1:23012",
        "tiny-tts": "127.0.0.1:23013",
        "local-stt": "127.0.0.1:23021",
        "local-llm": "127.0.0.1:23022",
        "local-tts": "127.0.0.1:23023",
    }
    assert config.pool("openai-llm").addresses == ("127.0.0.1:23032",)
    pinned = load_config(
        env={"PARLEY_HOME": str(home), "PARLEY_BASE_PORT": "23000", "PARLEY_ADMIN_PORT": "8080"}
    )
    assert (pinned.server.port, pinned.admin.port) == (23001, 8080)  # set by hand: kept
    default = load_config(env={"PARLEY_HOME": str(home)})
    assert (default.server.port, default.admin.port) == (50051, 50080)
    (home / "base.toml").write_text("base_port = 24000\n")
    from_file = load_config(home / "base.toml", env={"PARLEY_HOME": str(home)})
    assert from_file.server.port == 24001 and from_file.pool("tiny-tts").addresses == (
        "127.0.0.1:24013",
    )
    from parley.errors import ConfigError

    with pytest.raises(ConfigError, match="base_port"):
        load_config(env={"PARLEY_HOME": str(home), "PARLEY_BASE_PORT": "80"})


def test_doctor_passes_a_ready_machine_and_names_what_is_missing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor"]) == 0  # tiny: built on the spot, so not a problem
    out = capsys.readouterr().out
    assert "ready: `parley up` runs the default pipeline (tiny)" in out
    assert "pipeline openai" in out and "OPENAI_API_KEY" in out  # not ready, not blocking
    assert "admin accounts" in out and "parley admin create-user" in out
    base = int(os.environ["PARLEY_BASE_PORT"])
    assert f"port {base + 1}" in out and f"port {base + 30}" in out


def test_doctor_fails_on_a_missing_model_of_the_default_pipeline(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "parley.toml").write_text('[server]\ndefault_pipeline = "local"\n')
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  pipeline local *" in out and "parley models pull" in out
    assert "the default pipeline (local) cannot run yet: fix pipeline local" in out
    assert main(["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is False
    blocking = [c for c in report["checks"] if c["blocks"] and c["status"] == "fail"]
    assert [c["area"] for c in blocking] == ["pipeline local *"]


def test_doctor_fails_when_another_program_holds_a_port(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = int(os.environ["PARLEY_BASE_PORT"])
    with socket.socket() as squatter:  # not a Parley: it answers no health check
        squatter.bind(("127.0.0.1", base + 12))
        squatter.listen()
        assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  port {base + 12}" in out and "busy: another program" in out
    assert "PARLEY_BASE_PORT" in out and "tiny-llm" in out


def test_doctor_says_a_parley_already_there_is_fine(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config()
    with _server_process(home):
        assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"port {config.server.port}" in out and "server already running there" in out


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while _free(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


@contextmanager
def _server_process(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`parley server` alone (no workers), on the test's base port."""
    log = home / "server.log"
    config = load_config()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "server"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_port(config.server.port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.mark.slow
def test_edge_exits_non_zero_and_says_how_when_the_workers_are_down(home: Path) -> None:
    """Only the server runs: the turn fails for want of an STT worker."""
    with _server_process(home):
        done = subprocess.run(
            [sys.executable, "-m", "parley", "edge", "--wav", str(LAMP), "--out",
             str(home / "answer.wav"), "--fast"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr[-3000:]
    assert "start its workers: parley up --pipeline tiny" in done.stderr
    assert "'tiny' pipeline's stt workers are down" in done.stderr
    assert "latency (ms):" in done.stdout  # the same summary as `parley demo`
    assert "end of speech -> VAD decision" in done.stdout
    # no answer audio came: nothing was written, and nothing claims it was
    assert "answers written" not in done.stdout and not (home / "answer.wav").exists()
