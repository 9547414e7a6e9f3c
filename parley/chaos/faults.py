"""The fault cases: each starts its own server (and instant workers) in a scratch
directory, breaks something for real, and returns what it found.

Every case counts ``turns_lost``: utterances that produced neither a stored turn nor
an Error STORE_FAILED to the edge (a turn the edge was told is stored but that has no
row counts too), and ``crashes``: server processes that died without being killed,
streams that ended with ``UNKNOWN``, and tracebacks in the server's log.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from parley.chaos.client import RawStream, audio_chunks, hello, is_finished, is_kind, turn_audio
from parley.chaos.processes import ServerProcess, WorkerProcess, tmpfs_unavailable, workers_running
from protos import edge_pb2

Result = dict[str, Any]
Turn = edge_pb2.TurnEvent


def count_tracebacks(server: ServerProcess) -> int:
    return server.logs().count("Traceback (most recent call last)")


@asynccontextmanager
async def stack(
    home: Path, settings: Mapping[str, Mapping[str, Any]] | None = None, *, tmpfs_kb: int = 0
) -> AsyncIterator[tuple[ServerProcess, dict[str, WorkerProcess]]]:
    """Instant workers and a server, all processes, stopped at the end."""
    with workers_running(home) as workers:
        await asyncio.gather(*(w.start() for w in workers.values()))
        addresses = {stage: w.address for stage, w in workers.items()}
        server = ServerProcess(home, addresses, settings=settings, tmpfs_kb=tmpfs_kb)
        await server.start()
        try:
            yield server, workers
        finally:
            await server.stop()


async def speak_turn(address: str, device: str = "chaos", timeout: float = 30.0) -> RawStream:
    """One stream that speaks one turn, waits for FINISHED (or the end) and half-closes."""
    stream = await RawStream(address).open()
    stream.send(hello(device), *audio_chunks(turn_audio()))
    await stream.wait_for(is_finished, timeout=timeout)
    stream.close_send()
    await stream.finish()
    return stream


def _stored_turn_ids(database: str) -> set[str]:
    with sqlite3.connect(database.removeprefix("sqlite:///"), timeout=30) as db:
        rows = db.execute("SELECT id FROM turn WHERE status != 'running'").fetchall()
    return {row[0] for row in rows}


def turns_lost(streams: list[RawStream], database: str) -> int:
    """Spoken turns neither stored nor reported as not stored."""
    stored_rows = _stored_turn_ids(database)
    lost = 0
    for stream in streams:
        finished = stream.finished()
        failed = {e.turn_id for e in stream.errors() if e.code == edge_pb2.Error.STORE_FAILED}
        if not finished and not failed:
            lost += 1
        for turn in finished:
            if turn.stored and turn.turn_id not in stored_rows:
                lost += 1
            if not turn.stored and turn.turn_id not in failed:
                lost += 1
    return lost


# --------------------------------------------------------------------------- database lock


class SqliteLock:
    """Another process holding the SQLite write lock (BEGIN EXCLUSIVE) for a while."""

    SCRIPT = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "db.execute('COMMIT')\n"
    )

    def __init__(self, database_url: str, seconds: float) -> None:
        path = database_url.removeprefix("sqlite:///")
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, path, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )

    async def held(self) -> None:
        assert self.process.stdout is not None
        line = await asyncio.to_thread(self.process.stdout.readline)
        if line.strip() != "locked":
            raise RuntimeError("the lock holder did not take the lock")

    def release(self) -> None:
        self.process.kill()
        self.process.wait(5)


async def locked_database(home: Path, *, short_s: float, long_s: float, retry_s: float) -> Result:
    """Another process holds the write lock: from the start of speech for ``short_s``
    (less than the retry time: the turn must be stored), then for ``long_s`` (more than
    the retry time plus SQLite's 5 s busy wait: the edge must be told the turn was not
    stored), then while a new stream opens (refused with UNAVAILABLE, not UNKNOWN)."""
    settings = {"store": {"write_retry_s": retry_s}}
    async with stack(home, settings) as (server, _):
        streams = []
        for seconds in (short_s, long_s):
            stream = await RawStream(server.address).open()
            stream.send(hello("locked"))
            await stream.wait_for(is_kind("welcome"))
            lock = SqliteLock(server.database_url, seconds)
            await lock.held()
            stream.send(*audio_chunks(turn_audio()))
            await stream.wait_for(is_finished, timeout=seconds + retry_s + 20)
            lock.release()
            stream.close_send()
            await stream.finish()
            streams.append(stream)
        lock = SqliteLock(server.database_url, long_s)
        await lock.held()
        refused = await RawStream(server.address).open()
        refused.send(hello("refused"))
        status = await refused.finish(timeout=long_s + retry_s + 15)
        lock.release()
        finished = [s.finished() for s in streams]
        return {
            "stored_while_locked_briefly": bool(finished[0] and finished[0][0].stored),
            "reported_when_locked_too_long": bool(
                finished[1]
                and not finished[1][0].stored
                and any(e.code == edge_pb2.Error.STORE_FAILED for e in streams[1].errors())
            ),
            "new_stream_status": status.name if status else "none",
            "new_stream_details": refused.details,
            "turns_lost": turns_lost(streams, server.database_url),
            "crashes": count_tracebacks(server) + int(not server.alive()),
        }


# --------------------------------------------------------------------------- full disk


def media_problems(root: Path, database_url: str) -> list[str]:
    """Partial files left, rows naming a missing or short file, files without a row
    (``root``: the data directory as the server sees it)."""
    problems = [f"partial file {p.name}" for p in (root / ".partial").glob("*")]
    with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as db:
        rows = db.execute("SELECT path, bytes FROM media").fetchall()
    named = set()
    for relative, size in rows:
        named.add(relative)
        path = root / relative
        if not path.exists():
            problems.append(f"missing {relative}")
        elif path.stat().st_size != size:
            problems.append(f"wrong size {relative}")
    for path in (root / "turns").rglob("*"):
        if path.is_file() and str(path.relative_to(root)) not in named:
            problems.append(f"file without a row {path.relative_to(root)}")
    return problems


async def full_disk(home: Path, *, tmpfs_kb: int, turns: int) -> Result:
    """The data directory on a tmpfs of ``tmpfs_kb``: turns until it is full, then a
    read-only remount. Every turn is stored or reported; no partial file remains."""
    reason = tmpfs_unavailable()
    if reason:
        return {"skipped": reason}
    async with stack(home, tmpfs_kb=tmpfs_kb) as (server, _):
        streams = [await speak_turn(server.address, "disk") for _ in range(turns)]
        server.make_read_only()
        await asyncio.sleep(0.2)
        streams.append(await speak_turn(server.address, "disk"))
        root = Path(f"/proc/{server.pid}/root") / str(server.data_dir).lstrip("/")
        reasons = [e.message for s in streams for e in s.errors() if e.code == 8]
        stored = [t.stored for s in streams for t in s.finished()]
        return {
            "turns": len(streams),
            "stored": sum(stored),
            "not_stored": len(stored) - sum(stored),
            "disk_full_reported": any("disk full" in r for r in reasons),
            "read_only_reported": "read-only" in reasons[-1] if reasons else False,
            "media_problems": media_problems(root, server.database_url),
            "turns_lost": turns_lost(streams, server.database_url),
            "crashes": count_tracebacks(server) + int(not server.alive()),
        }


# --------------------------------------------------------------------------- workers


WARM_S = 1.0  # after Welcome, the session's connections to its workers are open


async def _stage_failure(
    address: str, timeout: float, break_it: Callable[[], None]
) -> tuple[float | None, RawStream]:
    """Open a stream, ``break_it`` once its worker connections are up, speak a turn;
    seconds from SPEECH_ENDED to the stage's Error (None: no error)."""
    stream = await RawStream(address).open()
    ended_at = None

    def ended(event: edge_pb2.ServerEvent) -> bool:
        return event.HasField("turn") and event.turn.kind == Turn.SPEECH_ENDED

    stream.send(hello("workers"))
    await stream.wait_for(is_kind("welcome"))
    await asyncio.sleep(WARM_S)
    break_it()
    stream.send(*audio_chunks(turn_audio()))
    if await stream.wait_for(ended, timeout=20) is not None:
        ended_at = time.monotonic()
    error = await stream.wait_for(is_kind("error"), timeout=timeout)
    failed_after = time.monotonic() - ended_at if error is not None and ended_at else None
    await stream.wait_for(is_finished, timeout=20)
    stream.close_send()
    await stream.finish()
    return failed_after, stream


async def worker_faults(home: Path, *, stt_timeout_s: float, llm_timeout_s: float) -> Result:
    """SIGSTOP the STT worker (the stage fails within stt_timeout_s of the end of
    speech), SIGSTOP the LLM worker, SIGKILL the LLM worker (fails at once, works again
    once it is back)."""
    settings = {"server": {"stt_timeout_s": stt_timeout_s, "llm_timeout_s": llm_timeout_s}}
    async with stack(home, settings) as (server, workers):
        stt, llm = workers["stt"], workers["llm"]
        streams = []
        stt_stalled, stream = await _stage_failure(
            server.address, stt_timeout_s + 30, lambda: stt.signal(signal.SIGSTOP)
        )
        streams.append(stream)
        stt.signal(signal.SIGCONT)
        llm_stalled, stream = await _stage_failure(
            server.address, llm_timeout_s + 30, lambda: llm.signal(signal.SIGSTOP)
        )
        streams.append(stream)
        llm.signal(signal.SIGCONT)
        llm_killed, stream = await _stage_failure(server.address, 30, llm.kill)
        streams.append(stream)
        await llm.start()
        await asyncio.sleep(2.5)  # the pool's back-off for a worker that was down
        after = await speak_turn(server.address, "workers")
        streams.append(after)
        return {
            "stt_sigstop_failed_after_s": _round(stt_stalled),
            "llm_sigstop_failed_after_s": _round(llm_stalled),
            "llm_sigkill_failed_after_s": _round(llm_killed),
            "deadlines_s": {"stt": stt_timeout_s, "llm": llm_timeout_s},
            "answered_after_restart": bool(after.finished()) and not after.errors(),
            "turns_lost": turns_lost(streams, server.database_url),
            "crashes": count_tracebacks(server) + int(not server.alive()),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def open_conversations(database_url: str) -> int:
    with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as db:
        row = db.execute("SELECT COUNT(*) FROM conversation WHERE ended_at IS NULL").fetchone()
    return int(row[0])


# --------------------------------------------------------------------------- server killed


async def server_killed_mid_turn(home: Path) -> Result:
    """The LLM worker stalls (SIGSTOP) so a turn is being answered, the server is
    killed (SIGKILL) and started again: the turn must be ``aborted`` with its input
    audio, the dead stream's conversation ended, and the server must serve again."""
    async with stack(home) as (server, workers):
        stream = await RawStream(server.address).open()
        stream.send(hello("killed"))
        await stream.wait_for(is_kind("welcome"))
        await asyncio.sleep(WARM_S)
        workers["llm"].signal(signal.SIGSTOP)
        stream.send(*audio_chunks(turn_audio()))
        ended = await stream.wait_for(
            lambda e: e.HasField("turn") and e.turn.kind == Turn.SPEECH_ENDED, timeout=20
        )
        await asyncio.sleep(0.5)  # the turn's row and input audio are written
        server.kill()
        await stream.finish()
        workers["llm"].signal(signal.SIGCONT)
        await server.start()
        after = await speak_turn(server.address, "killed")
        await asyncio.sleep(0.5)  # its conversation is ended just after the stream
        path = server.database_url.removeprefix("sqlite:///")
        turn_id = ended.turn.turn_id if ended else ""
        with sqlite3.connect(path, timeout=30) as db:
            row = db.execute("SELECT status, error FROM turn WHERE id = ?", (turn_id,)).fetchone()
            media = db.execute("SELECT kind FROM media WHERE turn_id = ?", (turn_id,)).fetchall()
        return {
            "status_after_restart": row[0] if row else "missing",
            "error": row[1] if row else "",
            "kept": sorted(kind for (kind,) in media),
            "conversations_left_open": open_conversations(server.database_url),
            "answered_after_restart": bool(after.finished()),
            "turns_lost": int(row is None) + turns_lost([after], server.database_url),
            "crashes": count_tracebacks(server),
        }
