"""A churn of sessions ending in every way a stream can end, and what it leaves
behind in the server: tasks, threads, file descriptors, memory, conversations not
ended, "connected" lines without their "disconnected"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from parley.chaos.client import RawStream, audio_chunks, hello, is_kind, turn_audio
from parley.chaos.faults import Result, count_tracebacks, open_conversations, stack
from parley.chaos.processes import ServerProcess


async def _one_session(address: str, ending: str, index: int) -> tuple[str, RawStream]:
    device = f"churn-{index % 5}"
    stream = await RawStream(address).open(timeout=0.6 if ending == "deadline" else None)
    stream.send(hello(device))
    await stream.wait_for(is_kind("welcome"), timeout=10)
    if ending == "cancel mid-turn":
        stream.send(*audio_chunks(turn_audio()))
        await stream.wait_for(is_kind("turn"), timeout=20)  # speech started
    elif ending == "turn then half-close":  # the answer must still come
        stream.send(*audio_chunks(turn_audio()))
    if ending in ("half-close", "turn then half-close"):
        stream.close_send()
    elif ending in ("cancel", "cancel mid-turn"):
        stream.cancel()
    elif ending == "drop":
        await stream.channel.close(grace=None)
    await stream.finish(timeout=15)
    return ending, stream


CHURN_ENDINGS = (
    "half-close",
    "cancel",
    "drop",
    "deadline",
    "turn then half-close",
    "cancel mid-turn",
)


async def churn(server: ServerProcess, sessions: int, *, concurrency: int = 5) -> list[RawStream]:
    """``sessions`` streams, ``concurrency`` at a time, ending in every way in turn."""
    streams: list[RawStream] = []
    for start in range(0, sessions, concurrency):
        batch = range(start, min(sessions, start + concurrency))
        done = await asyncio.gather(
            *(_one_session(server.address, CHURN_ENDINGS[i % len(CHURN_ENDINGS)], i) for i in batch)
        )
        streams += [stream for _, stream in done]
    return streams


async def churn_leaks(home: Path, *, sessions: int, warmup: int) -> Result:
    """Churn ``sessions`` streams after ``warmup``; the server's tasks, threads, fds
    and memory before and after, conversations left open, "disconnected" lines."""
    async with stack(home) as (server, _):
        await churn(server, warmup)
        await asyncio.sleep(1.0)
        before = await server.stats()
        streams = await churn(server, sessions)
        after = await settled(server, before)
        logs = server.logs()
        answered = [s for s in streams if any(not t.interrupted for t in s.finished())]
        return {
            "sessions": sessions + warmup,
            "before": before,
            "after": after,
            "rss_growth_percent": round(100 * after["rss_kb"] / before["rss_kb"] - 100, 1),
            "leaked_tasks": after["tasks"] - before["tasks"],
            "leaked_threads": after["threads"] - before["threads"],
            "leaked_fds": after["fds"] - before["fds"],
            "conversations_left_open": open_conversations(server.database_url),
            "disconnected_lines": logs.count(" disconnected (session "),
            "connected_lines": logs.count(" connected from "),
            "half_closed_turns_answered": len(answered),
            "statuses": _statuses(streams),
            "turns_lost": sum(1 for s in streams if s.status == grpc.StatusCode.UNKNOWN),
            "crashes": count_tracebacks(server) + int(not server.alive()),
        }


async def settled(server: ServerProcess, before: dict[str, int]) -> dict[str, int]:
    """The server's figures once the last streams' cleanups and gRPC's own closing of
    their connections are done (a leak stays; a socket being closed goes): polled for
    up to 5 s until tasks, threads and descriptors are back to ``before``."""
    for _ in range(10):
        await asyncio.sleep(0.5)
        after = await server.stats()
        if all(after[key] <= before[key] for key in ("tasks", "threads", "fds")):
            break
    return after


def _statuses(streams: list[RawStream]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stream in streams:
        name = stream.status.name if stream.status else "none"
        counts[name] = counts.get(name, 0) + 1
    return counts
