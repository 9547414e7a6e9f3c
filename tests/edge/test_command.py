"""`parley edge` as people run it: options, --list-devices, --dry-run, a refused
token, and the agent as a process that stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from edge.agent import AgentRejected, EdgeAgent
from edge.dryrun import Check, dry_run
from edge.headless import HeadlessEdge
from edge.speaker import NullSpeaker
from edge.tls import secure_dial
from parley import db
from parley.cli import build_parser
from parley.commands.edge import edge_config as cli_edge_config
from parley.config import EdgeConfig
from server import devices
from server.store import TurnStore
from server.store_failures import StoreFailure
from tests.edge.conftest import LAMP, Pulse, ScriptedSource, edge_config, running
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack

FRAMES = Path(__file__).resolve().parents[1] / "data" / "frames"
ASSET_WAV = (
    Path(__file__).resolve().parents[2] / "parley" / "assets" / "turn_on_the_living_room_lamp.wav"
)


def parse(*argv: str) -> EdgeConfig:
    args = build_parser().parse_args(["edge", *argv])
    return cli_edge_config(args, EdgeConfig(token="from-env"))


def test_command_line_options_override_the_config() -> None:
    config = parse(
        "--server", "pi-server:6000", "--mic", "USB", "--speaker", "none", "--full-duplex",
        "--no-camera", "--buffer-s", "10", "--ca", "ca.pem", "--cert", "c.pem", "--key",
        "k.pem", "--server-name", "parley.lan", "--device-id", "kitchen",
    )  # fmt: skip
    assert (config.server, config.device_id, config.token) == (
        "pi-server:6000",
        "kitchen",
        "from-env",
    )
    assert (config.mic_device, config.speaker_device, config.full_duplex) == ("USB", "none", True)
    assert (config.camera, config.buffer_s) == ("none", 10.0)
    assert (config.tls_ca, config.tls_cert, config.tls_key) == ("ca.pem", "c.pem", "k.pem")
    assert config.tls_server_name == "parley.lan"


def test_defaults_are_half_duplex_auto_camera_and_a_30_s_buffer() -> None:
    config = parse()
    assert not config.full_duplex and config.echo_tail_ms == 300
    assert (config.camera, config.camera_fps, config.buffer_s) == ("auto", 1.0, 30.0)
    assert config.reconnect_max_s == 5.0


def test_a_camera_folder_means_the_folder_camera_and_size_is_parsed() -> None:
    config = parse("--camera-folder", "/srv/frames", "--fps", "2", "--size", "320x240")
    assert (config.camera, config.camera_folder, config.camera_fps) == (
        "folder",
        "/srv/frames",
        2.0,
    )
    assert (config.camera_width, config.camera_height) == (320, 240)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--size", "big", "WIDTHxHEIGHT"),
        ("--size", "0x0", "from 1 to 10000"),
        ("--fps", "-1", "must be > 0.0"),
        ("--fps", "nan", "not a finite number"),
        ("--buffer-s", "-5", "must be >= 0.0"),
        ("--mic-file", "/nonexistent.wav", "no such file"),
        ("--mic-file", "/etc/passwd", "not a sound file"),
    ],
)
def test_bad_option_values_are_usage_errors(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(option, value)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and message in err


def test_bench_edge_command() -> None:
    args = build_parser().parse_args(["bench", "edge", "--seconds", "5", "--json"])
    assert (args.bench_command, args.seconds, args.json, args.devices) == ("edge", 5.0, True, False)


async def _parley(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_list_devices_shows_the_sound_server(pulse: Pulse) -> None:
    code, out = await _parley("edge", "--list-devices", env={"PULSE_SERVER": pulse.server})
    assert code == 0
    assert "pulse" in out and "default input" in out


async def test_dry_run_checks_devices_camera_and_server(pulse: Pulse, stack: Stack) -> None:
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm(), "tts": ToneTts()})
    config = edge_config(
        stack.address, mic_device="pulse", speaker_device="pulse", camera_folder=str(FRAMES)
    )
    config = EdgeConfig(**{**config.__dict__, "camera": "folder"})
    checks = await dry_run(config)
    assert [(c.name, c.ok) for c in checks] == [
        ("microphone", True), ("speaker", True), ("camera", True), ("server", True),
    ]  # fmt: skip
    assert "0.5 s captured" in checks[0].detail
    assert "320x240 JPEG" in checks[2].detail
    assert "is serving" in checks[3].detail


async def test_dry_run_fails_with_one_line_per_problem() -> None:
    code, out = await _parley(
        "edge", "--dry-run", "--server", "127.0.0.1:9", "--mic-file", str(ASSET_WAV),
        "--speaker", "none", "--camera", "picamera2",
    )  # fmt: skip
    assert code == 1
    lines = {line.split()[0]: line for line in out.splitlines() if line and line[0] != " "}
    assert "ok" in lines["microphone"] and "file turn_on" in lines["microphone"]
    assert "FAIL" in lines["camera"] and "python3-picamera2" in lines["camera"]
    assert "FAIL" in lines["server"] and "health check" in lines["server"]


async def test_a_refused_token_stops_the_agent_with_a_clear_error(stack: Stack) -> None:
    await stack.start(
        {"stt": FixedStt(), "llm": ScriptedLlm(), "tts": ToneTts()}, server={"token": "right"}
    )
    agent = EdgeAgent(
        edge_config(stack.address, token="wrong"),
        source=ScriptedSource(),
        speaker=NullSpeaker(),
        dial=lambda: secure_dial(stack.address),
    )
    with pytest.raises(AgentRejected, match="refused this edge: wrong token"):
        async with running(agent):
            pass


async def test_the_agent_process_streams_and_stops_cleanly_on_sigterm(
    stack: Stack, tmp_path: Path
) -> None:
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Okay."), "tts": ToneTts()})
    stats_file = tmp_path / "stats.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley", "edge", "--server", stack.address,
        "--mic-file", str(LAMP), "--speaker", "none", "--camera-folder", str(FRAMES),
        "--fps", "4", "--stats-file", str(stats_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    await asyncio.sleep(5.0)  # start-up, then the 3 s command and its answer
    process.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(process.communicate(), 15)
    log = out.decode()
    assert process.returncode == 0, log
    stats = json.loads(stats_file.read_text())
    assert stats["connects"] == 1 and stats["chunks_sent"] > 50 and stats["frames_sent"] >= 4
    assert stats["turns"] >= 1
    assert "connected to" in log and "edge stopped:" in log
    assert "file turn_on_the_living_room_lamp.wav (44100 Hz, 2 ch)" in log


async def test_dry_run_sends_the_hello_and_reports_the_servers_verdict(stack: Stack) -> None:
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm(), "tts": ToneTts()})
    db.open_database(f"sqlite:///{stack.home}/test.db")
    with db.database.connection_context():
        token = devices.add_device("kitchen")
    quiet = {"mic_file": str(LAMP), "speaker_device": "none", "camera": "none"}

    async def server_check(**fields: str) -> Check:
        config = edge_config(stack.address, device_id="kitchen", **{**quiet, **fields})
        return (await dry_run(config))[-1]

    welcomed = await server_check(token=token)
    assert welcomed.ok and "welcomed device 'kitchen' (pipeline test)" in welcomed.detail
    wrong = await server_check(token="pdt_bad")
    assert not wrong.ok and "refused this edge: wrong token" in wrong.detail
    unknown = await server_check(token=token, pipeline="nope")
    assert not unknown.ok and "refused this edge" in unknown.detail and "nope" in unknown.detail
    # the welcomed stream sent no audio: no turn is stored, and no empty conversation
    with db.database.connection_context():
        assert db.Turn.select().count() == 0
        assert db.Conversation.select().count() == 0

    # the command: PARLEY_EDGE_TOKEN=bad parley edge --dry-run fails, on the server line
    code, out = await _parley(
        "edge", "--dry-run", "--server", stack.address, "--device-id", "kitchen",
        "--mic-file", str(LAMP), "--speaker", "none", "--no-camera",
        env={"PARLEY_EDGE_TOKEN": "bad"},
    )  # fmt: skip
    assert code == 1, out
    (server_line,) = [line for line in out.splitlines() if line.startswith("server")]
    assert "FAIL" in server_line and "wrong token" in server_line


async def test_headless_json_reports_a_refused_stream_and_writes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    await stack.start(
        {"stt": FixedStt(), "llm": ScriptedLlm(), "tts": ToneTts()}, server={"token": "right"}
    )
    out = tmp_path / "answer.wav"
    code, stdout = await _parley(
        "edge", "--server", stack.address, "--wav", str(LAMP), "--out", str(out), "--fast",
        "--json", env={"PARLEY_EDGE_TOKEN": "wrong"},
    )  # fmt: skip
    assert code == 1
    report = json.loads(stdout[stdout.index("{") :])
    assert "wrong token" in report["error"] and report["output"] is None
    assert report["turns"] == [] and not out.exists()
    code, text = await _parley(
        "edge", "--server", stack.address, "--wav", str(LAMP), "--out", str(out), "--fast",
        env={"PARLEY_EDGE_TOKEN": "wrong"},
    )  # fmt: skip
    assert code == 1 and "parley edge: error:" in text and "wrong token" in text
    assert "answers written" not in text and "Traceback" not in text


async def test_a_turn_the_server_could_not_store_says_stored_false(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Okay."), "tts": ToneTts()})

    async def disk_full(*args: object, **kwargs: object) -> None:
        raise StoreFailure("finish turn", "disk full", "[Errno 28] No space left on device")

    monkeypatch.setattr(TurnStore, "finish_turn", disk_full)
    edge = dataclasses.replace(config.edge, server=stack.address, device_id="kitchen")
    report = await HeadlessEdge(edge, fast=True).run(LAMP, tmp_path / "answer.wav")
    (turn,) = [t for t in report.turns if t.transcript]
    assert turn.as_dict()["stored"] is False
    assert "STORE_FAILED" in turn.error and "disk full" in turn.error
    assert report.output == str(tmp_path / "answer.wav")  # the answer was still spoken
