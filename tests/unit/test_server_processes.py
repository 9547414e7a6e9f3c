"""The server's process count and the supervisor's start-up rules (the real thing, with
gRPC, the store and kills, is tests/integration/test_server_processes.py)."""

from __future__ import annotations

import sys
import time

import pytest

from parley.arguments import MAX_PROCESSES
from parley.commands.server import process_count
from parley.config import load_config
from parley.errors import ConfigError
from server.processes import Supervisor, default_processes


def test_process_count_defaults_to_one_per_core_and_the_flag_wins():
    config = load_config(env={})
    assert process_count(None, config) == default_processes() >= 1
    assert process_count(3, config) == 3
    assert process_count(None, load_config(env={"PARLEY_SERVER_PROCESSES": "2"})) == 2
    with pytest.raises(ConfigError, match="0 \\(one per core\\) or more"):
        process_count(-1, config)


def _child(code: str) -> list[str]:
    """A stand-in server: ``code`` runs with ``fd`` = the ready pipe (the supervisor
    appends ``--ready-fd N``)."""
    return [sys.executable, "-c", f"import os, sys, time; fd = int(sys.argv[2]); {code}"]


def test_a_process_that_exits_while_starting_fails_the_whole_start():
    started = time.monotonic()
    assert Supervisor(_child("sys.exit(3)"), 3).run() == 3  # the failed process's own status
    assert time.monotonic() - started < 10


def test_a_process_that_exits_after_all_were_up_is_restarted(monkeypatch):
    # Each child says it is ready, then exits after half a second: the supervisor
    # restarts them (back-off shortened) until it is stopped.
    monkeypatch.setattr("server.processes.BACKOFF_S", (0.05, 0.1))
    supervisor = Supervisor(_child("os.write(fd, b'ready\\n'); time.sleep(0.5)"), 2)
    deadline = time.monotonic() + 20

    original = supervisor._step

    def step() -> bool:
        if supervisor.restarts >= 2 or time.monotonic() > deadline:
            supervisor._stop_signal = 15
        return original()

    monkeypatch.setattr(supervisor, "_step", step)
    assert supervisor.run() == 0
    assert supervisor.restarts >= 2 and not supervisor.children


def test_a_stop_while_starting_starts_no_more_processes(monkeypatch):
    """SIGTERM while the processes are being started: the rest are not started (a
    supervisor asked for many once went on starting them all before it stopped)."""
    supervisor = Supervisor(_child("time.sleep(30)"), 50, grace_s=5)
    spawned = []
    original = supervisor._spawn

    def spawn(slot: int) -> None:
        original(slot)
        spawned.append(slot)
        if len(spawned) == 2:
            supervisor._on_signal(15, None)  # as the signal handler would

    monkeypatch.setattr(supervisor, "_spawn", spawn)
    started = time.monotonic()
    assert supervisor.run() == 0
    assert spawned == [0, 1] and not supervisor.children
    assert time.monotonic() - started < 10


def test_the_process_count_is_capped():
    assert default_processes() <= MAX_PROCESSES == 64
    with pytest.raises(ConfigError, match="processes = 65"):
        load_config(env={"PARLEY_SERVER_PROCESSES": "65"})


def test_no_processes_is_refused():
    with pytest.raises(ValueError):
        Supervisor(["true"], 0)


def test_a_wrong_end_of_turn_model_fails_once_before_any_process_starts(
    tmp_path, monkeypatch, capsys
):
    from parley import cli
    from parley.commands import server as server_command

    model = tmp_path / "smart-turn-v3.2-cpu.onnx"
    model.write_bytes(b"<html>not found</html>")
    toml = tmp_path / "parley.toml"
    toml.write_text(f'[turn]\nstrategy = "smart_turn"\nmodel_path = "{model}"\n')
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path / "home"))
    started = []
    monkeypatch.setattr(server_command, "_supervise", lambda *a: started.append(a) or 0)

    assert cli.main(["--config", str(toml), "server", "--processes", "3"]) == 2

    assert started == []  # no server process was started
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("parley: error: ")
    assert str(model) in errors[0]


def test_the_supervisor_gives_its_processes_a_bracketed_ipv6_address(monkeypatch):
    import argparse
    import dataclasses

    from parley.commands import server as server_command
    from server import processes

    commands = []

    class Recorder:
        def __init__(self, command, count):
            commands.append(command)

        def run(self):
            return 0

    monkeypatch.setattr(processes, "Supervisor", Recorder)
    config = load_config(env={})
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, host="::1", port=6001)
    )
    args = argparse.Namespace(config=None, verbose=False)
    assert server_command._supervise(args, config, 2) == 0
    (command,) = commands
    assert command[command.index("--listen") + 1] == "[::1]:6001"
