"""The server process dies mid-stream and comes back: the edge reconnects by itself,
and the audio captured during the outage reaches the new server with its original
capture times (within the buffer), or is dropped and counted (beyond it).

The server runs as a real process (`python -m parley server`); the instant engines
serve its pipeline from this test's event loop on free ports, so they outlive it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from edge.agent import EdgeAgent
from edge.speaker import NullSpeaker
from edge.tls import secure_dial
from parley import db, rpc
from protos import edge_pb2
from tests.edge.conftest import (
    Events,
    ScriptedSource,
    edge_config,
    lamp_16k,
    reference_turn_seconds,
    running,
    wait_until,
)
from tests.integration.conftest import free_address
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine
from workers.main import serve_engine

Turn = edge_pb2.TurnEvent


class ServerProcess:
    """`python -m parley server` on a fixed port, killed and restarted at will."""

    def __init__(self, home: Path, workers: dict[str, str]) -> None:
        self.home = home
        self.address = free_address()
        self.port = self.address.rsplit(":", 1)[1]
        self.config = home / "parley.toml"
        lines = ['[server]\ndefault_pipeline = "edge-test"\n']
        for stage, address in workers.items():
            lines.append(
                f'[pools.test-{stage}]\nstage = "{stage}"\nengine = "instant"\n'
                f'addresses = ["{address}"]\nlocal = false\n'
            )
        lines.append("[pipelines.edge-test]\n")
        lines += [f'{stage} = {{ pool = "test-{stage}" }}\n' for stage in workers]
        self.config.write_text("\n".join(lines))
        self.database_url = f"sqlite:///{home / 'parley.db'}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {
            "PARLEY_HOME": str(self.home),
            "PARLEY_CONFIG": str(self.config),
            "PARLEY_SERVER_PORT": self.port,
            "PATH": "/usr/bin:/bin",
        }
        self.starts += 1
        with (self.home / f"server-{self.starts}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "parley", "server"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.process = self._spawn()
        try:
            await rpc.wait_healthy(self.address, timeout=30)
        except TimeoutError:
            self.kill()
            log = (self.home / f"server-{self.starts}.log").read_text()
            raise AssertionError(f"the server did not start:\n{log[-2000:]}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no goodbye: as if it crashed or lost power
            self.process.wait(5)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    workers: dict[str, grpc.aio.Server] = {}
    addresses = {}
    for stage, engine in (
        ("stt", InstantSttEngine()),
        ("llm", InstantLlmEngine()),
        ("tts", InstantTtsEngine()),
    ):
        addresses[stage] = free_address()
        workers[stage], _ = await serve_engine(stage, "instant", engine, addresses[stage])
    process = ServerProcess(tmp_path, addresses)
    await process.start()
    try:
        yield process
    finally:
        process.kill()
        for worker in workers.values():
            await worker.stop(None)


def agent_for(
    server: ServerProcess, source: ScriptedSource, **settings: object
) -> tuple[EdgeAgent, Events]:
    events = Events()
    agent = EdgeAgent(
        edge_config(server.address, reconnect_max_s=0.5, **settings),
        source=source,
        speaker=NullSpeaker(),
        dial=lambda: secure_dial(server.address),
        observer=events,
    )
    return agent, events


async def test_speech_during_an_outage_is_answered_after_the_server_returns(
    server: ServerProcess,
) -> None:
    source = ScriptedSource()
    agent, events = agent_for(server, source)
    async with running(agent):
        await asyncio.sleep(0.5)  # streaming normally
        first_session = agent.uplink.session_id
        server.kill()
        await wait_until(lambda: not agent.connected.is_set(), timeout=5)
        outage_from = time.monotonic()
        spoken = source.say(lamp_16k())  # the user speaks while the server is down
        await asyncio.sleep(spoken + 1.0)
        assert not events.turns(Turn.SPEECH_ENDED)
        await server.start()
        await wait_until(agent.connected.is_set, timeout=10)
        reconnected_at = time.monotonic()
        await wait_until(lambda: events.turns(Turn.FINISHED), timeout=20)
        stats = agent.snapshot()
    assert agent.uplink.session_id != first_session
    (ended,) = events.turns(Turn.SPEECH_ENDED)
    # The speech end is where it was captured (original capture times), not where
    # it was sent.
    assert outage_from < ended.edge_time < outage_from + spoken
    assert ended.edge_time < reconnected_at - 1.0
    # The new server stored the turn, as long as the clip makes when sent live.
    db.open_database(server.database_url)
    with db.database.connection_context():
        row = db.Turn.get_by_id(ended.turn_id)
        conversations = db.Conversation.select().count()
    assert row.status == "done"
    assert row.speech_seconds == pytest.approx(reference_turn_seconds(), abs=0.2)
    assert conversations == 2
    # Every chunk was sent once or is still waiting: none lost, none twice.
    assert stats["chunks_dropped"] == 0
    assert stats["chunks_replayed"] >= (spoken + 1.0) * 50 * 0.9
    assert stats["chunks_sent"] + stats["chunks_buffered"] == stats["chunks_captured"]
    assert (stats["connects"], stats["disconnects"]) == (2, 1)


async def test_an_outage_longer_than_the_buffer_drops_the_oldest_audio_and_counts_it(
    server: ServerProcess,
) -> None:
    source = ScriptedSource()
    agent, _ = agent_for(server, source, buffer_s=0.4)  # 20 chunks
    async with running(agent):
        await asyncio.sleep(0.3)
        server.kill()
        await wait_until(lambda: not agent.connected.is_set(), timeout=5)
        captured_before = agent.stats.chunks_captured
        await asyncio.sleep(1.5)  # ~75 chunks captured, room for 20
        await server.start()
        await wait_until(agent.connected.is_set, timeout=10)
        captured_offline = agent.stats.chunks_captured - captured_before
        await asyncio.sleep(0.3)
        stats = agent.snapshot()
    assert stats["chunks_replayed"] == 20  # a full buffer's worth was sent on reconnect
    assert stats["chunks_dropped"] >= 50
    # What was captured offline, and what the dead server had not acknowledged, was
    # either replayed or dropped.
    assert stats["chunks_resent"] > 0
    lost_or_replayed = captured_offline + stats["chunks_resent"]
    assert abs(stats["chunks_dropped"] + 20 - lost_or_replayed) <= 5
    assert (
        stats["chunks_sent"] + stats["chunks_buffered"] + stats["chunks_dropped"]
        == (stats["chunks_captured"])
    )
