"""Parley across several hosts, for real, on this machine: network namespaces joined by
veth pairs to a bridge, with private addresses this test creates (10.77.0.0/24, inside
its own namespaces only: nothing outside them is touched).

    db      10.77.0.5   PostgreSQL (the store and the span store)
    server  10.77.0.10  `parley server --processes 2`
    w1, w2  10.77.0.11, 10.77.0.12   one STT, LLM and TTS worker each (one pool per stage)
    otel    10.77.0.20  an OTLP/gRPC collector (tests/otlp_receiver.py)
    edge    10.77.0.30  `parley edge --wav`: three spoken turns at real-time pace

Worker host w1 is killed between the second and the third turn: the third is answered
by w2. Every turn is stored on the database host, and the server's and both worker
hosts' spans reach the collector. Needs root (``ip netns``), iproute2 and PostgreSQL;
skipped, saying which is missing, otherwise. Everything is removed at the end, also
when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from parley.audio import AudioConverter, float_to_pcm16, read_audio, write_wav
from tests.postgres import SUPERUSER, Cluster, find_bindir

ROOT = Path(__file__).resolve().parents[2]
LAMP = ROOT / "tests" / "data" / "turn_on_the_living_room_lamp.wav"
HOSTS = {
    "db": "10.77.0.5",
    "server": "10.77.0.10",
    "w1": "10.77.0.11",
    "w2": "10.77.0.12",
    "otel": "10.77.0.20",
    "edge": "10.77.0.30",
}
NETWORK = "10.77.0.0/24"
PORTS = {"stt": 50061, "llm": 50062, "tts": 50063}
SERVER_PORT, OTLP_PORT, PG_PORT = 50051, 4317, 5432
TURNS, GAP_S = 3, 2.5  # utterances in the edge's recording, silence after each


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


class Network:
    """Namespaces ``<prefix>-<host>`` on a bridge in ``<prefix>-lan``, and the processes
    started in them (all stopped, then the namespaces deleted, by :meth:`close`)."""

    def __init__(self, tmp: Path) -> None:
        self.prefix = f"p11-{os.getpid()}"
        self.tmp = tmp
        self.namespaces: list[str] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _add(self, name: str) -> None:
        done = _ip("netns", "add", name)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        self.namespaces.append(name)

    def build(self) -> None:
        lan = self.ns("lan")
        self._add(lan)
        steps = [
            ("-n", lan, "link", "add", "br0", "type", "bridge"),
            ("-n", lan, "link", "set", "br0", "up"),
        ]
        for host, address in HOSTS.items():
            self._add(self.ns(host))
            steps += [
                ("-n", lan, "link", "add", f"v-{host}", "type", "veth",
                 "peer", "name", "eth0", "netns", self.ns(host)),
                ("-n", lan, "link", "set", f"v-{host}", "master", "br0", "up"),
                ("-n", self.ns(host), "addr", "add", f"{address}/24", "dev", "eth0"),
                ("-n", self.ns(host), "link", "set", "eth0", "up"),
                ("-n", self.ns(host), "link", "set", "lo", "up"),
            ]  # fmt: skip
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")

    def wrap(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def start(self, name: str, host: str, argv: list[str], env: dict[str, str]) -> None:
        """Run ``argv`` on ``host``: its stderr in <tmp>/<name>.log, stdout in .out."""
        with (
            (self.tmp / f"{name}.log").open("wb") as log,
            (self.tmp / f"{name}.out").open("wb") as out,
        ):
            self.processes[name] = subprocess.Popen(
                [*self.wrap(host), *argv],
                stdout=out,
                stderr=log,
                env={**os.environ, **env},
                cwd=ROOT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait_port(self, host: str, address: str, port: int, name: str) -> None:
        """Until ``address``:``port`` accepts connections, seen from ``host``."""
        deadline = time.monotonic() + 120
        probe = [*self.wrap(host), "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}"]
        while subprocess.run(probe, capture_output=True).returncode != 0:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
            assert time.monotonic() < deadline, f"{name} not listening:\n{self.log(name)[-3000:]}"
            time.sleep(0.2)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(5)

    def close(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                self.stop(name, signal.SIGKILL, 5)
        for name in reversed(self.namespaces):
            _ip("netns", "del", name)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (the ip command)")
    net = Network(tmp_path)
    try:
        try:
            net.build()
        except RuntimeError as exc:
            pytest.skip(f"cannot create network namespaces here: {exc}")
        yield net
    finally:
        net.close()


def recording(path: Path) -> Path:
    """The lamp command ``TURNS`` times, ``GAP_S`` of silence after each (16 kHz)."""
    samples, rate = read_audio(LAMP)
    converter = AudioConverter(rate, 1 if samples.ndim == 1 else samples.shape[1])
    lamp = float_to_pcm16(np.concatenate([converter.convert(samples.tobytes()), converter.flush()]))
    gap = np.zeros(int(GAP_S * 16000), np.int16)
    write_wav(path, np.concatenate([lamp, gap] * TURNS).tobytes(), 16000)
    return path


def write_config(path: Path, database_url: str) -> Path:
    lines = ['[server]\ndefault_pipeline = "lan"\n', f'[store]\ndatabase_url = "{database_url}"\n']
    for stage, port in PORTS.items():
        addresses = ", ".join(f'"{HOSTS[h]}:{port}"' for h in ("w1", "w2"))
        lines.append(
            f'[pools.lan-{stage}]\nstage = "{stage}"\nengine = "instant"\n'
            f"addresses = [{addresses}]\nlocal = false\n"
        )
    stages = "\n".join(f'{s} = {{ pool = "lan-{s}" }}' for s in PORTS)
    lines.append(f"[pipelines.lan]\n{stages}\n")
    path.write_text("\n".join(lines))
    return path


def test_turns_across_hosts_survive_a_dead_worker_host(network: Network, tmp_path: Path):
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/bootstrap.sh dev installs it)")
    database = Cluster(  # listening on the database host's address only
        bindir, host=HOSTS["db"], port=PG_PORT, wrap=network.wrap("db"), clients=NETWORK
    )
    try:
        database.start()
        url = database.createdb("parley")
        _run_the_network(network, tmp_path, database, url)
    finally:
        database.stop()


def _run_the_network(network: Network, tmp_path: Path, database: Cluster, url: str) -> None:
    config = write_config(tmp_path / "parley.toml", url)
    spans_file = tmp_path / "collector.jsonl"
    otlp = f"http://{HOSTS['otel']}:{OTLP_PORT}"

    # Nobody gets in by default: the workers and the server share a worker token, and
    # the edge has its own device token (made as an operator would, on the server host).
    secrets = {"PARLEY_WORKERS_TOKEN": "lan-workers-" + os.urandom(16).hex()}

    def env(host: str) -> dict[str, str]:
        (tmp_path / host).mkdir(exist_ok=True)
        return {
            "PARLEY_HOME": str(tmp_path / host),
            "PARLEY_CONFIG": str(config),
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
            "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={host}",
            **secrets,
        }

    python = [sys.executable, "-m"]
    added = subprocess.run(
        [*network.wrap("server"), *python, "parley", "device", "add", "lan-speaker"],
        env={**os.environ, **env("server")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (token,) = re.findall(r"^PARLEY_EDGE_TOKEN=(\S+)$", added.stdout, re.M)
    secrets["PARLEY_EDGE_TOKEN"] = token
    network.start(
        "collector",
        "otel",
        [*python, "tests.otlp_receiver", "--listen", f"{HOSTS['otel']}:{OTLP_PORT}",
         "--out", str(spans_file)],
        {},
    )  # fmt: skip
    for host in ("w1", "w2"):
        for stage, port in PORTS.items():
            network.start(
                f"{host}-{stage}",
                host,
                [*python, "parley", "worker", "--pool", f"lan-{stage}",
                 "--listen", f"{HOSTS[host]}:{port}"],
                env(host),
            )  # fmt: skip
    network.start(
        "server",
        "server",
        [*python, "parley", "server", "--processes", "2",
         "--listen", f"{HOSTS['server']}:{SERVER_PORT}"],
        env("server"),
    )  # fmt: skip
    network.wait_port("edge", HOSTS["otel"], OTLP_PORT, "collector")
    for host in ("w1", "w2"):
        for stage, port in PORTS.items():
            network.wait_port("edge", HOSTS[host], port, f"{host}-{stage}")
    network.wait_port("edge", HOSTS["server"], SERVER_PORT, "server")
    deadline = time.monotonic() + 60
    while "all 2 server processes are listening" not in network.log("server"):
        assert time.monotonic() < deadline, network.log("server")[-3000:]
        time.sleep(0.1)

    # The edge speaks three turns in real time; worker host w1 dies after the second.
    network.start(
        "edge",
        "edge",
        [*python, "parley", "edge", "--server", f"{HOSTS['server']}:{SERVER_PORT}",
         "--device-id", "lan-speaker", "--wav", str(recording(tmp_path / "three.wav")),
         "--out", str(tmp_path / "answers.wav"), "--json"],
        env("edge"),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "device lan-speaker connected" not in network.log("server"):
        assert time.monotonic() < deadline and network.processes["edge"].poll() is None
        time.sleep(0.05)
    streaming_since = time.monotonic()
    period = 3.0 + GAP_S  # the clip is 3.0 s long
    time.sleep(max(0.0, streaming_since + 2 * period - 1.0 - time.monotonic()))
    killed_at_ns = time.time_ns()
    for stage in PORTS:
        network.stop(f"w1-{stage}", signal.SIGKILL)

    assert network.processes["edge"].wait(90) == 0, network.log("edge")[-3000:]
    report = json.loads((tmp_path / "edge.out").read_text())
    turns = report["turns"]
    assert len(turns) == TURNS and not report["errors"], report
    assert all(t["response"] and not t["error"] and t["answer_audio_seconds"] > 0 for t in turns)

    # Stop the rest cleanly, so every process exports its last spans.
    for name in ("server", "w2-stt", "w2-llm", "w2-tts"):
        assert network.stop(name) == 0, network.log(name)[-3000:]
    network.stop("collector")

    # Every turn is stored on the database host.
    rows = _psql(
        network,
        database,
        "SELECT t.status FROM turn t JOIN conversation c ON c.id = t.conversation_id"
        " WHERE c.device_id = 'lan-speaker'",
    )
    assert rows == ["done"] * TURNS
    services = set(_psql(network, database, "SELECT DISTINCT service FROM span"))
    assert {"parley-server", "parley-worker-stt", "parley-worker-llm"} <= services

    # The collector got the server's and both worker hosts' spans; after w1 died, only
    # w2 answered (the third turn's calls moved there).
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert {s["instance"] for s in spans} >= {"server", "w1", "w2"}
    by_trace: dict[str, set[str]] = {}
    for s in spans:
        if s["service"].startswith("parley-worker-"):
            by_trace.setdefault(s["trace_id"], set()).add(f"{s['instance']}/{s['service']}")
    before, after = turns[: TURNS - 1], turns[TURNS - 1 :]
    assert any("w1/parley-worker-llm" in by_trace[t["trace_id"]] for t in before), by_trace
    for turn in after:
        workers = by_trace[turn["trace_id"]]
        assert workers == {f"w2/parley-worker-{s}" for s in PORTS}, workers
        failed = {  # the server's calls to w1 that failed before moving to w2
            s["name"]
            for s in spans
            if s["trace_id"] == turn["trace_id"] and s["instance"] == "server" and s["error"]
        }
        assert failed, "the third turn never tried the dead host"
    late = [s for s in spans if s["instance"] == "w1" and s["start_ns"] > killed_at_ns]
    assert not late


def _psql(network: Network, database: Cluster, sql: str) -> list[str]:
    done = subprocess.run(
        [*network.wrap("edge"), str(database.bindir / "psql"), "-h", HOSTS["db"],
         "-p", str(PG_PORT), "-U", SUPERUSER, "-d", "parley", "-At", "-c", sql],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.split()
