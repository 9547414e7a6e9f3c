"""`parley server --processes N` for real: N processes share the Converse port, many
concurrent streams (each its own TCP connection, as edges have) are accepted by every
one of them, every turn is stored (SQLite and PostgreSQL), a killed process is
restarted, SIGTERM stops them all, and a start-up that cannot work fails clearly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip("psutil", reason="these tests need psutil (the [dev] extra)")

import psutil

from parley import db, rpc
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    free_address,
    hello,
    is_turn,
    speech,
)

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
STREAMS = 30  # P(a process gets none of them) = 3 * (2/3)**30 < 2e-5
FINISHED = edge_pb2.TurnEvent.FINISHED
T = TypeVar("T")


def write_config(path: Path, stack: Stack, database_url: str) -> Path:
    """A parley.toml whose only pipeline uses the stack's (in-test) workers."""
    lines = ['[server]\ndefault_pipeline = "test"\n', f'[store]\ndatabase_url = "{database_url}"\n']
    for stage, address in stack.addresses.items():
        lines.append(
            f'[pools.test-{stage}]\nstage = "{stage}"\nengine = "fake"\n'
            f'addresses = ["{address}"]\nlocal = false\n'
        )
    stages = "\n".join(f'{s} = {{ pool = "test-{s}" }}' for s in ("stt", "llm", "tts"))
    lines.append(f"[pipelines.test]\n{stages}\n")
    path.write_text("\n".join(lines))
    return path


class Supervised:
    """`parley server --processes N` as a subprocess of the test."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def listening(self) -> set[int]:
        """PIDs of the children that listen on the port."""
        pids = set()
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                for conn in child.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port:
                        pids.add(child.pid)
        return pids

    def streams_by_pid(self) -> dict[int, int]:
        """Established connections to the port, per child."""
        counts = {}
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                counts[child.pid] = sum(
                    conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == self.port
                    for conn in child.net_connections(kind="tcp")
                )
        return counts

    async def wait_listening(self, count: int, exclude: set[int] = frozenset()) -> set[int]:
        deadline = time.monotonic() + 90
        while len(pids := self.listening() - exclude) < count:
            assert self.process.returncode is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        return pids


@contextlib.asynccontextmanager
async def supervised(
    tmp_path: Path, config: Path, processes: int, env: dict[str, str] | None = None
) -> AsyncIterator[Supervised]:
    port = int(free_address().rsplit(":", 1)[1])
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parley", "--config", str(config), "server",
            "--processes", str(processes), "--listen", f"127.0.0.1:{port}",
            stdout=out, stderr=out, cwd=ROOT,
            env={**os.environ, "PARLEY_HOME": str(tmp_path), **(env or {})},
        )  # fmt: skip
    running = Supervised(process, port, log)
    try:
        yield running
    finally:
        if process.returncode is None:
            children = running.children()
            process.kill()  # on Linux, the children are told to stop when it dies
            await process.wait()
            psutil.wait_procs(children, timeout=15)


async def converse(
    address: str, clients: int, device: str, while_open: Callable[[], T]
) -> tuple[list[str], T]:
    """``clients`` concurrent streams, each its own connection, one turn each: the turn
    ids, and what ``while_open()`` saw once every turn was answered, streams still open."""
    samples, rate = speech()
    async with contextlib.AsyncExitStack() as streams:
        edges = [
            await streams.enter_async_context(
                EdgeClient(address, hello(device_id=device), own_connection=True)
            )
            for _ in range(clients)
        ]
        await asyncio.gather(*(edge.send(audio_events(samples, rate)) for edge in edges))
        finished = await asyncio.gather(
            *(edge.wait_for(is_turn(FINISHED), timeout=60) for edge in edges)
        )
        return [event.turn.turn_id for event in finished], while_open()


def stored_statuses(database_url: str, turn_ids: list[str]) -> list[str]:
    db.open_database(database_url)
    with db.database.connection_context():
        rows = db.Turn.select(db.Turn.id, db.Turn.status).where(db.Turn.id.in_(turn_ids))
        return sorted(str(row.status) for row in rows)


def turn_spans(database_url: str, turn_ids: list[str]) -> int:
    """How many of these turns have their "turn" span in the span store."""
    db.open_database(database_url)
    with db.database.connection_context():
        spans = db.Span.select().where((db.Span.name == "turn") & db.Span.turn_id.in_(turn_ids))
        return int(spans.count())


async def test_server_processes_share_the_port_store_every_turn_and_are_supervised(
    stack: Stack, tmp_path: Path, database_url: str
):
    for stage, engine in (("stt", FixedStt()), ("llm", ScriptedLlm("Done.")), ("tts", ToneTts())):
        await stack.start_worker(stage, engine)
    config = write_config(tmp_path / "parley.toml", stack, database_url)
    async with supervised(tmp_path, config, PROCESSES) as server:
        first = await server.wait_listening(PROCESSES)

        turn_ids, streams = await converse(
            server.address, STREAMS, "shared-speaker", server.streams_by_pid
        )
        # Every stream is one connection held by one process, and every process has some.
        assert sum(streams.values()) == STREAMS and set(streams) == first, streams
        assert all(streams[pid] > 0 for pid in first), streams
        assert stored_statuses(database_url, turn_ids) == ["done"] * STREAMS
        # ... and every process exports its spans to the database (within its interval).
        deadline = time.monotonic() + 20
        while (traced := turn_spans(database_url, turn_ids)) < STREAMS:
            assert time.monotonic() < deadline, f"{traced} of {STREAMS} turns traced"
            await asyncio.sleep(0.5)

        # A process that dies is reported and replaced; the port keeps serving.
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        (replacement,) = await server.wait_listening(1, exclude=first)
        assert replacement not in first and victim not in server.listening()
        assert f"(pid {victim}) exited with code -9" in server.log.read_text()
        more, _ = await converse(server.address, 6, "another-speaker", lambda: None)
        assert stored_statuses(database_url, more) == ["done"] * 6

        # SIGTERM stops them all.
        children = server.children()
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive
        assert "stopping 3 server process(es)" in server.log.read_text()


async def test_a_start_up_that_cannot_work_fails_clearly(stack: Stack, tmp_path: Path):
    for stage, engine in (("stt", FixedStt()), ("llm", ScriptedLlm("Done.")), ("tts", ToneTts())):
        await stack.start_worker(stage, engine)
    unreachable = "postgresql://parley:s3cret@127.0.0.1:1/parley"  # nothing listens there
    config = write_config(tmp_path / "parley.toml", stack, unreachable)
    async with supervised(tmp_path, config, 2) as server:
        code = await asyncio.wait_for(server.process.wait(), 60)
    log = server.log.read_text()
    assert code == 2, log  # the failed process's status: a start-up error, as one process
    assert "exited with code 2 while starting; stopping" in log
    assert "s3cret" not in log
    with pytest.raises(TimeoutError):
        await rpc.wait_healthy(server.address, timeout=0.5)
