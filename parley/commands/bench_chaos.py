"""`parley bench chaos`: the fuzzer and every fault case against real processes, and
what they found: inputs tried, crashes, turns lost, leaks.

Each case runs its own server (:mod:`parley.chaos.probe`) and ``instant`` workers as
processes in a scratch directory (see :mod:`parley.chaos.faults` for the cases). The
figures that must hold (the target): 0 crashes (a server process that died unasked, a
stream ending with UNKNOWN, a traceback in a server log), 0 turns lost (an utterance
neither stored nor reported as not stored, or stored twice), no task, thread or file
descriptor leaked over the churn, and resident memory within 10 % after it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.commands.bench import machine, report
from parley.config import Config

TARGET = {"crashes": 0, "turns_lost": 0, "leaked_tasks": 0, "rss_growth_percent": 10.0}


@dataclass(frozen=True)
class ChaosPlan:
    """How much of each case to run (the defaults are the full run)."""

    seed: int = 9
    fuzz_sessions: int = 300
    fuzz_messages: int = 40
    fuzz_seconds: float = 180.0
    churn_sessions: int = 50
    churn_warmup: int = 20
    utterances: int = 20  # spoken while the server is killed at random moments
    lock_s: float = 8.0  # a lock shorter than store.write_retry_s: the turn is stored
    long_lock_s: float = 20.0  # longer: the edge is told the turn was not stored
    write_retry_s: float = 10.0
    tmpfs_kb: int = 300
    disk_turns: int = 7
    stt_timeout_s: float = 3.0
    llm_timeout_s: float = 3.0


QUICK = ChaosPlan(
    fuzz_sessions=30,
    fuzz_messages=25,
    fuzz_seconds=30.0,
    churn_sessions=20,
    churn_warmup=6,
    utterances=5,
    lock_s=1.0,
    long_lock_s=6.5,
    write_retry_s=1.0,
    stt_timeout_s=1.5,
    llm_timeout_s=1.5,
)


def _case_passed(name: str, case: dict[str, Any], plan: ChaosPlan) -> bool:
    if "skipped" in case:
        return True
    if name == "locked_database":
        return bool(
            case["stored_while_locked_briefly"]
            and case["reported_when_locked_too_long"]
            and case["new_stream_status"] == "UNAVAILABLE"
        )
    if name == "full_disk":
        return bool(
            case["disk_full_reported"] and case["read_only_reported"] and not case["media_problems"]
        )
    if name == "workers":
        limit = {"stt": plan.stt_timeout_s, "llm": plan.llm_timeout_s}
        stalled = [case["stt_sigstop_failed_after_s"], case["llm_sigstop_failed_after_s"]]
        return bool(
            all(v is not None for v in stalled)
            and stalled[0] <= limit["stt"] + 1.0
            and stalled[1] <= limit["llm"] + 1.0
            and case["answered_after_restart"]
        )
    if name == "server_killed_mid_turn":
        return bool(
            case["status_after_restart"] == "aborted"
            and case["kept"] == ["input"]
            and not case["conversations_left_open"]
            and case["answered_after_restart"]
        )
    if name == "exactly_once":
        return bool(
            not case["turns_twice"] and not case["turns_cut"] and case["chunks"]["accounted"]
        )
    if name == "churn":
        return bool(
            not case["conversations_left_open"]
            and case["disconnected_lines"] == case["connected_lines"] == case["sessions"]
            and case["leaked_tasks"] <= 0
            and case["rss_growth_percent"] <= TARGET["rss_growth_percent"]
        )
    return True


async def fuzz_case(home: Path, plan: ChaosPlan) -> dict[str, Any]:
    """The fuzzer against a fresh server; crashes: streams that ended with UNKNOWN,
    tracebacks in the server's log, and the server dying."""
    from parley.chaos import faults, fuzz

    async with faults.stack(home) as (server, _):
        case = await fuzz.run_fuzz(
            server.address,
            seed=plan.seed,
            sessions=plan.fuzz_sessions,
            messages=plan.fuzz_messages,
            seconds=plan.fuzz_seconds,
            alive=server.alive,
        )
        await asyncio.sleep(0.5)  # the last stream's cleanup is logged
        case["crashes"] = (
            case["unknown"] + faults.count_tracebacks(server) + int(not server.alive())
        )
        case["turns_lost"] = 0
    return case


async def run_chaos(plan: ChaosPlan, scratch: Path) -> dict[str, Any]:
    """Every case, in order; the combined figures."""
    from parley.chaos import churn, crash, faults

    started = time.monotonic()
    cases: dict[str, dict[str, Any]] = {"fuzz": await fuzz_case(scratch / "fuzz", plan)}
    cases["churn"] = await churn.churn_leaks(
        scratch / "churn", sessions=plan.churn_sessions, warmup=plan.churn_warmup
    )
    cases["locked_database"] = await faults.locked_database(
        scratch / "locked", short_s=plan.lock_s, long_s=plan.long_lock_s, retry_s=plan.write_retry_s
    )
    cases["full_disk"] = await faults.full_disk(
        scratch / "disk", tmpfs_kb=plan.tmpfs_kb, turns=plan.disk_turns
    )
    cases["workers"] = await faults.worker_faults(
        scratch / "workers", stt_timeout_s=plan.stt_timeout_s, llm_timeout_s=plan.llm_timeout_s
    )
    cases["server_killed_mid_turn"] = await faults.server_killed_mid_turn(scratch / "killed")
    cases["exactly_once"] = await crash.exactly_once(
        scratch / "exactly-once", utterances=plan.utterances, seed=plan.seed
    )
    for name, case in cases.items():
        case["passed"] = _case_passed(name, case, plan)
    churned = cases["churn"]
    result = {
        "benchmark": "chaos",
        "seed": plan.seed,
        "inputs_tried": cases["fuzz"]["inputs_tried"],
        "crashes": sum(c.get("crashes", 0) for c in cases.values()),
        "turns_lost": sum(c.get("turns_lost", 0) for c in cases.values())
        + cases["exactly_once"]["turns_twice"],
        "leaks": {
            "tasks": churned["leaked_tasks"],
            "threads": churned["leaked_threads"],
            "fds": churned["leaked_fds"],
            "rss_mb_before": round(churned["before"]["rss_kb"] / 1024, 1),
            "rss_mb_after": round(churned["after"]["rss_kb"] / 1024, 1),
            "rss_growth_percent": churned["rss_growth_percent"],
        },
        "cases": cases,
        "target": TARGET,
        "seconds": round(time.monotonic() - started, 1),
    }
    result["meets_target"] = bool(
        result["crashes"] == 0
        and result["turns_lost"] == 0
        and churned["leaked_tasks"] <= 0
        and churned["rss_growth_percent"] <= TARGET["rss_growth_percent"]
        and all(case["passed"] for case in cases.values())
    )
    return result


def run_bench_chaos(args: argparse.Namespace, config: Config) -> int:
    plan = QUICK if args.quick else ChaosPlan()
    overrides = {
        key: value
        for key, value in {
            "seed": args.seed,
            "fuzz_sessions": args.fuzz_sessions,
            "churn_sessions": args.churn_sessions,
            "utterances": args.utterances,
        }.items()
        if value is not None
    }
    plan = ChaosPlan(**{**plan.__dict__, **overrides})
    logging.getLogger("edge").setLevel(logging.ERROR)  # the killed server's reconnects
    with tempfile.TemporaryDirectory(prefix="parley-chaos-") as scratch:
        result = asyncio.run(run_chaos(plan, Path(scratch)))
    result["machine"] = machine()
    ok = "meets" if result["meets_target"] else "MISSES"
    leaks = result["leaks"]
    report(
        result,
        args,
        f"chaos: {result['inputs_tried']} inputs, {result['crashes']} crashes, "
        f"{result['turns_lost']} turns lost, {leaks['tasks']} tasks leaked, "
        f"RSS {leaks['rss_mb_before']} -> {leaks['rss_mb_after']} MB: {ok} the target",
    )
    return 0 if result["meets_target"] else 1
