"""A locked-down stack as real processes: `parley device add` issues the demo's token,
`parley demo` starts the server and three workers that want mutual TLS and a worker
token (from one config file and the environment), and a turn runs through them. And the
server and a worker, asked to listen beyond loopback with no authentication, refuse to
start with a message that says what to do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parley import db
from tests.edge.test_tls import certs  # noqa: F401 - the fixture
from tests.integration.conftest import free_address

pytestmark = pytest.mark.skipif(
    not __import__("shutil").which("openssl"), reason="needs the openssl tool"
)


def parley(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_turn_through_a_stack_with_device_tokens_and_mutual_tls_workers(
    tmp_path: Path,
    certs: Path,  # noqa: F811
) -> None:
    stt, llm, tts, server = (free_address() for _ in range(4))
    config = tmp_path / "parley.toml"
    config.write_text(
        f"""
[server]
port = {server.rsplit(":", 1)[1]}

[workers]
tls_cert = "{certs}/server.pem"
tls_key = "{certs}/server.key"
tls_client_ca = "{certs}/ca.pem"
tls_ca = "{certs}/ca.pem"
tls_client_cert = "{certs}/client.pem"
tls_client_key = "{certs}/client.key"

[pools.instant-stt]
addresses = ["{stt}"]
[pools.instant-llm]
addresses = ["{llm}"]
[pools.instant-tts]
addresses = ["{tts}"]
"""
    )
    env = dict(
        os.environ,
        PARLEY_HOME=str(tmp_path),
        PARLEY_CONFIG=str(config),
        PARLEY_WORKERS_TOKEN="worker-secret-" + "y" * 24,
    )
    added = parley(env, "device", "add", "parley-demo")
    assert added.returncode == 0, added.stderr
    token = re.search(r"^PARLEY_EDGE_TOKEN=(pdt_\S+)$", added.stdout, re.M)
    assert token, added.stdout

    demo = parley(
        dict(env, PARLEY_EDGE_TOKEN=token.group(1)),
        *("demo", "--pipeline", "instant", "--fast", "--json", "--out", str(tmp_path / "a.wav")),
        timeout=180,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout)
    assert summary["turn_id"] and not summary["errors"]
    assert sorted(summary["started"]) == sorted(
        ["server", "instant-stt", "instant-llm", "instant-tts"]
    )
    db.open_database(f"sqlite:///{tmp_path}/parley.db")
    with db.database.connection_context():
        turn = db.Turn.get_by_id(summary["turn_id"])
        assert turn.status == "done"
        assert (turn.conversation.device_id, turn.conversation.auth) == (
            "parley-demo",
            "device token",
        )
    logs = {p.stem: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert "(token, mutual TLS)" in logs["instant-llm"]  # how the worker checks its callers
    listed = parley(env, "device", "list")
    assert "parley-demo" in listed.stdout and token.group(1) not in listed.stdout


def test_server_and_worker_refuse_to_listen_openly(tmp_path: Path) -> None:
    env = dict(os.environ, PARLEY_HOME=str(tmp_path))
    env.pop("PARLEY_WORKERS_TOKEN", None)
    server = parley(env, "server", "--listen", "0.0.0.0:0")
    assert server.returncode == 2
    assert "refusing to start the Parley server on 0.0.0.0:" in server.stderr
    assert "parley device add NAME" in server.stderr and "--insecure" in server.stderr
    worker = parley(env, "worker", "llm", "--engine", "instant", "--listen", "0.0.0.0:0")
    assert worker.returncode == 2
    assert "refusing to start the llm worker on 0.0.0.0:0" in worker.stderr
    assert "PARLEY_WORKERS_TOKEN" in worker.stderr and "--insecure" in worker.stderr
