"""The server process dies mid-stream and comes back: the edge reconnects by itself,
and the audio captured during the outage reaches the new server with its original
capture times (within the buffer), or is dropped and counted (beyond it).

The server runs as a real process (:class:`parley.chaos.processes.ServerProcess`); the
instant engines serve its pipeline from this test's event loop on free ports, so they
outlive it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from edge.agent import EdgeAgent
from edge.speaker import NullSpeaker
from edge.tls import secure_dial
from parley import db
from parley.chaos.processes import ServerProcess, free_address
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
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine
from workers.main import serve_engine

Turn = edge_pb2.TurnEvent


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
        # chunk_ms as the ScriptedSource cuts (20 ms): the ring holds buffer_s of them
        edge_config(server.address, reconnect_max_s=0.5, chunk_ms=20, **settings),
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
