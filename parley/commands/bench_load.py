"""`parley bench load`: how many live streams one server answers in real time.

N streams (parley/commands/loadgen.py: real speech looped with silence, paced at real
time, random phase, one asyncio loop) against a scratch server and the `instant`
pipeline's workers started here (as for `parley bench turn`), or against a server
already running (``--server ADDRESS``, e.g. one started with several processes). It
reports turns expected vs answered, end of speech -> first answer audio and VAD
decision -> first answer audio (both at the generator, p50/p99), how far the server is
behind real time (Ping round trips), and over the measured window (all N streams live,
after a warm-up) the CPU and memory of the server and worker processes (found by the
ports they listen on: this machine only), of the server's VAD scoring thread per 32 ms
window, and of the generator itself.

``--floor``: the same load against a server that only takes the messages
(parley/commands/load_floor.py): what the gRPC stream alone costs per stream.

``--find-max``: N = 1 first (the reference; it speaks every clip + 2 s, so its p99
ranks more turns), then N = ``--streams``, growing by ``--step`` until a step is not
answered in real time: its p99 after the VAD decision exceeds twice the reference's, or
a turn is unanswered, or anything is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parley.commands import load_floor
from parley.commands.bench import (
    free_port,
    machine,
    percentiles,
    process_cpu_seconds,
    report,
    scratch_stack,
)
from parley.commands.demo import DEMO_WAV
from parley.commands.load_probe import Probe, listening_pids
from parley.commands.loadgen import (
    RATE,
    Cycle,
    StreamResult,
    build_cycle,
    clip_16k,
    connect_streams,
    drive,
    plan_streams,
)
from parley.commands.models import ensure_models
from parley.config import Config
from parley.errors import ParleyError

PIPELINE = "instant"
TARGET = {"cpu_percent_per_stream": 0.4, "vad_cpu_ms_per_window": 0.1, "streams": 200}
WINDOW = 512  # VAD window (samples at 16 kHz)
MAX_BEHIND_MS = 1000.0  # a Ping answered later than this: the server fell behind
REFERENCE_GAP_S = 2.0  # the N = 1 reference speaks every clip + 2 s: more turns to rank
# What a --floor step does not report: figures of turns, the VAD and the workers.
FLOOR_MEANINGLESS = (
    "turns",
    "speech_end_to_first_audio_ms",
    "after_decision_ms",
    "server_decision_to_first_audio_sent_ms",
    "turns_per_second",
    "vad_cpu_ms_per_window",
)
FLOOR_CPU = (
    "server_percent",
    "server_threads_percent",
)  # the N = 1 reference speaks every clip + 2 s: more turns to rank


def summarise(results: Sequence[StreamResult], chunks_planned: int) -> dict[str, Any]:
    """Turn counts and latencies over every stream (times in ms).

    A turn is answered when answer audio arrived and it finished uninterrupted with no
    error. ``after_decision_ms``: first answer audio - the capture time of the audio at
    which the VAD decided (speech end + the server's endpointing time)."""
    turns = [t for r in results for t in r.turns.values() if t.speech_end is not None]
    answered = [
        t
        for t in turns
        if t.first_audio is not None and t.finished and not t.interrupted and not t.error
    ]
    to_audio, after_decision, server_side = [], [], []
    for t in answered:
        assert t.first_audio is not None and t.speech_end is not None
        to_audio.append((t.first_audio - t.speech_end) * 1000)
        if "endpointing_ms" in t.latency_ms:
            decided = t.speech_end + t.latency_ms["endpointing_ms"] / 1000
            after_decision.append((t.first_audio - decided) * 1000)
        if "first_audio_sent_ms" in t.latency_ms:
            server_side.append(t.latency_ms["first_audio_sent_ms"])
    expected = sum(r.expected_turns for r in results)
    failed = [f"stream {r.index}: {r.failed}" for r in results if r.failed]
    errors = [e for r in results for e in r.errors]
    unsent = sum(max(0, chunks_planned - r.chunks_sent) for r in results)
    return {
        "streams": len(results),
        "turns": {
            "expected": expected,
            "detected": len(turns),
            "answered": len(answered),
            "interrupted": sum(t.interrupted for t in turns),
            "failed": sum(bool(t.error) for t in turns),
        },
        "speech_end_to_first_audio_ms": percentiles(to_audio),
        "after_decision_ms": percentiles(after_decision),
        "server_decision_to_first_audio_sent_ms": percentiles(server_side),
        "behind_real_time_ms": percentiles([lag for r in results for lag in r.lag_ms]),
        "generator_late_ms": percentiles([r.late_ms for r in results]),
        "dropped": {
            "streams_failed": len(failed),
            "errors": len(errors),
            "chunks_unsent": unsent,
            "examples": (failed + errors)[:5],
        },
    }


def in_real_time(summary: dict[str, Any], reference_p99_ms: float | None) -> bool:
    """Every turn answered, nothing dropped, never more than a second behind real time,
    and (given a reference) p99 after the VAD decision at most twice the reference's."""
    turns, dropped = summary["turns"], summary["dropped"]
    ok = (
        turns["expected"] > 0
        and turns["answered"] == turns["expected"] == turns["detected"]
        and not (dropped["streams_failed"] or dropped["errors"] or dropped["chunks_unsent"])
    )
    ok = ok and summary["behind_real_time_ms"].get("max", 0.0) <= MAX_BEHIND_MS
    p99 = summary["after_decision_ms"].get("p99")
    if ok and reference_p99_ms is not None:
        ok = p99 is not None and p99 <= 2 * reference_p99_ms
    return bool(ok)


async def run_step(
    address: str,
    n: int,
    seconds: float,
    cycle: Cycle,
    probe: Probe,
    *,
    pipeline: str,
    token: str = "",
    seed: int = 0,
) -> dict[str, Any]:
    """One load of ``n`` streams for ``seconds``: summary plus resource figures."""
    plans = plan_streams(n, seconds, cycle, seed=seed)
    streams = await connect_streams(address, plans, cycle, pipeline=pipeline, token=token)
    t0 = time.monotonic() + 1.0
    live_s = plans[0].chunks(cycle) * cycle.chunk_ms / 1000
    warmup = min(5.0, live_s / 4)
    driving = asyncio.create_task(drive(streams, t0))
    loop_lag: list[float] = []
    watching = asyncio.create_task(_watch_loop(loop_lag))
    try:
        await asyncio.sleep(max(0.0, t0 + warmup - time.monotonic()))
        before, gen_before, wall_before = probe.sample(), _own_cpu(), time.monotonic()
        await asyncio.sleep(max(0.0, t0 + live_s - 0.5 - time.monotonic()))
        after, gen_after, wall_after = probe.sample(), _own_cpu(), time.monotonic()
        results = await driving
    finally:
        for task in (driving, watching):
            task.cancel()
        await asyncio.gather(driving, watching, return_exceptions=True)
    wall = wall_after - wall_before
    windows = n * wall * RATE / WINDOW
    resources = probe.figures(before, after, wall, n, windows)
    resources["generator_cpu_percent"] = round(100 * (gen_after - gen_before) / wall, 2)
    # How late the generator's own event loop ran timers: when this is large, its
    # latency figures include its own congestion, not only the server's.
    resources["generator_loop_lag_ms"] = percentiles(loop_lag)
    return {
        **summarise(results, plans[0].chunks(cycle)),
        "seconds": round(live_s, 1),
        "measured_s": round(wall, 1),
        "turns_per_second": round(n * cycle.turns / cycle.seconds, 2),
        **resources,
    }


async def _watch_loop(lags: list[float], every_s: float = 0.02) -> None:
    """Record how late a timer of ``every_s`` fires on this loop (ms), until cancelled."""
    while True:
        due = time.monotonic() + every_s
        await asyncio.sleep(every_s)
        lags.append((time.monotonic() - due) * 1000)


def _own_cpu() -> float:
    return process_cpu_seconds(os.getpid())


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot apply (ParleyError, one line)."""
    if args.floor:
        given = [
            name
            for name, used in (
                ("--server", bool(args.server)),
                ("--processes", args.processes != 1),
                ("--find-max", args.find_max),
                ("--pipeline", args.pipeline != PIPELINE),
                ("--token", bool(args.token)),
            )
            if used
        ]
        if given:
            dropped = ", ".join(given)
            raise ParleyError(f"--floor starts its own message-only server: drop {dropped}")
    if args.server and args.processes != 1:
        raise ParleyError("--processes is for the server the benchmark starts, not --server")
    if args.find_max and args.max_streams < args.streams:
        raise ParleyError(
            f"--max-streams {args.max_streams} is below --streams {args.streams}: "
            "--find-max would run only the N = 1 reference"
        )


def check_length(seconds: float, cycle: Cycle) -> None:
    """A run shorter than one cycle may hold no turn at all (each stream starts at a
    random phase of it): refuse it rather than report a step with nothing to count."""
    if seconds < cycle.seconds:
        raise ParleyError(
            f"--seconds {seconds:g} is shorter than one cycle of the clip and its silence "
            f"({cycle.seconds:.1f} s): raise --seconds or lower --gap-s"
        )


async def measure(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    check_arguments(args)
    chunk_ms = args.chunk_ms or config.edge.chunk_ms
    clip = Path(args.clip) if args.clip else DEMO_WAV
    speech = clip_16k(clip)
    cycle = build_cycle(speech, args.gap_s, chunk_ms, config.vad)
    check_length(args.seconds, cycle)
    reference = build_cycle(speech, min(args.gap_s, REFERENCE_GAP_S), chunk_ms, config.vad)
    result: dict[str, Any] = {
        "benchmark": "load",
        "pipeline": args.pipeline,
        "clip": clip.name,
        "cycle_s": cycle.seconds,
        "turns_per_cycle": cycle.turns,
        "chunk_ms": chunk_ms,
    }
    if args.floor:
        return await _measure_floor(args, cycle, result)
    with tempfile.TemporaryDirectory(prefix="parley-bench-load-") as scratch:
        stack = None
        if args.server:
            address = args.server
            result["server"] = "external"
        else:
            config, stack = scratch_stack(
                config,
                [args.pipeline],
                Path(scratch),
                free_worker_ports=True,
                processes=args.processes,
            )
            address = f"127.0.0.1:{config.server.port}"
            started = await stack.start()
            if len(started) != len(stack.specs):
                stack.stop()
                raise ParleyError(
                    "some of the benchmark's workers are already running (e.g. a `parley up`); "
                    "stop them so the benchmark measures processes it started itself"
                )
            await _all_listening(config.server.port, args.processes)
            result["server"] = "scratch"
            result["server_processes"] = args.processes
        try:
            probe = Probe.find(address, config, args.pipeline)
            result["processes"] = probe.describe()
            result["steps"] = await _steps(args, address, cycle, probe, reference)
        finally:
            if stack is not None:
                stack.stop()
    _conclude(result, args)
    result["target"] = TARGET
    result["machine"] = machine()
    return result


async def _all_listening(port: int, processes: int, timeout: float = 60.0) -> None:
    """Wait until ``processes`` server processes listen on ``port`` (the first one
    answers health checks before the others have bound): every one's CPU counts."""
    deadline = time.monotonic() + timeout
    while len(listening_pids(port)) < processes:
        if time.monotonic() > deadline:
            found = len(listening_pids(port))
            raise ParleyError(f"{found} of {processes} server processes listen on port {port}")
        await asyncio.sleep(0.2)


async def _measure_floor(
    args: argparse.Namespace, cycle: Cycle, result: dict[str, Any]
) -> dict[str, Any]:
    """The transport floor: one step against load_floor's server (no turns, so only
    the CPU, memory and how far behind real time it falls mean anything)."""
    port = free_port()
    floor = load_floor.start(port)
    try:
        probe = Probe(server=listening_pids(port))
        step = await run_step(
            f"127.0.0.1:{port}", args.streams, args.seconds, cycle, probe, pipeline=""
        )
    finally:
        floor.terminate()
        floor.wait(10)
    result["server"] = "floor"
    result["processes"] = probe.describe()
    for key in FLOOR_MEANINGLESS:  # no turns, no VAD, no workers
        step.pop(key, None)
    step["cpu"] = {k: v for k, v in step["cpu"].items() if k in FLOOR_CPU}
    step["in_real_time"] = step["behind_real_time_ms"].get("max", 0.0) <= MAX_BEHIND_MS
    result["steps"] = [{"n": args.streams, "cycle_s": cycle.seconds, **step}]
    result["machine"] = machine()
    return result


async def _steps(
    args: argparse.Namespace, address: str, cycle: Cycle, probe: Probe, reference: Cycle
) -> list[dict[str, Any]]:
    """One step of ``--streams``; with ``--find-max`` the N = 1 reference (on the
    ``reference`` cycle: the same clip, more turns in the time), then growing steps."""

    async def step(n: int, on: Cycle) -> dict[str, Any]:
        figures = await run_step(
            address, n, args.seconds, on, probe, pipeline=args.pipeline, token=args.token
        )
        return {"n": n, "cycle_s": on.seconds, **figures}

    if not args.find_max:
        only = await step(args.streams, cycle)
        only["in_real_time"] = in_real_time(only, None)  # (no reference to compare with)
        return [only]
    alone = await step(1, reference)
    alone["in_real_time"] = in_real_time(alone, None)
    steps = [alone]
    p99 = alone["after_decision_ms"].get("p99")
    n = args.streams
    while n <= args.max_streams:
        figures = await step(n, cycle)
        figures["in_real_time"] = in_real_time(figures, p99)
        steps.append(figures)
        if not figures["in_real_time"]:
            break
        n += args.step
    return steps


def _conclude(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The verdict per target, from the largest step answered in real time (or the one
    step without ``--find-max``)."""
    steps = result["steps"]
    if args.find_max:
        passed = [s for s in steps[1:] if s["in_real_time"]]
        result["reference_after_decision_p99_ms"] = steps[0]["after_decision_ms"].get("p99")
        result["max_streams_in_real_time"] = max((s["n"] for s in passed), default=0)
    else:
        passed = [s for s in steps if s["in_real_time"]]
    # A step that fell behind did less work than it was sent: its CPU figures flatter it.
    best = max(passed, key=lambda s: s["n"], default=None)
    vad = [s["vad_cpu_ms_per_window"] for s in passed if s["n"] >= 50]
    cpu = best.get("cpu_percent_per_stream") if best else None
    result["meets_target"] = {
        "vad_cpu_ms_per_window": bool(vad) and max(vad) <= TARGET["vad_cpu_ms_per_window"],
        "cpu_percent_per_stream": cpu is not None and cpu <= TARGET["cpu_percent_per_stream"],
        "streams": result.get("max_streams_in_real_time", 0) >= TARGET["streams"],
    }


def run_bench_load(args: argparse.Namespace, config: Config) -> int:
    check_arguments(args)
    if not args.server and not args.floor:
        ensure_models(config, args.pipeline)
    result = asyncio.run(measure(args, config))
    last = result["steps"][-1]
    if args.floor:
        floor = f"the gRPC floor: {last.get('cpu_percent_per_stream')} % of a core per stream"
        report(result, args, f"N={last['n']}: {floor}")
        return 0
    line = (
        f"N={last['n']}: {last['turns']['answered']}/{last['turns']['expected']} turns answered, "
        f"after VAD decision p99 {last['after_decision_ms'].get('p99')} ms, "
        f"server+workers {last.get('cpu_percent_per_stream')} % of a core per stream"
    )
    if args.find_max:
        line = f"largest N in real time: {result['max_streams_in_real_time']}; last step {line}"
    report(result, args, line)
    return 0
