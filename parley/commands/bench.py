"""`parley bench turn`: where the time goes between the VAD's end-of-speech decision
and the first answer audio sent, over N real turns through real processes (run per
turn-taking setting by parley/commands/bench_turn_taking.py).

Each turn streams the bundled spoken command (at real-time pace unless --fast) to a
server and workers running as separate processes on loopback, waits for the answer,
and collects the turn's latency record. The store goes to a scratch directory, so
benchmark turns never mix with real ones. Figures: per stage the model time (measured
inside the worker) and the overhead (everything else: transfer, queueing,
serialisation, bookkeeping).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.commands.demo import DEMO_WAV
from parley.commands.launcher import LocalStack, is_loopback
from parley.config import Config
from parley.errors import ParleyError

if TYPE_CHECKING:
    from edge.headless import TurnReport

STAGES = ("stt", "llm", "tts", "send")
TARGET = {"overhead_p50_ms": 5.0, "overhead_p99_ms": 20.0}


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99 plus mean and max (empty input: {})."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[index]

    return {
        "p50": round(rank(50), 3),
        "p90": round(rank(90), 3),
        "p99": round(rank(99), 3),
        "mean": round(sum(ordered) / len(ordered), 3),
        "max": round(ordered[-1], 3),
    }


def summarise(records: list[dict[str, float]]) -> dict[str, Any]:
    complete = [r for r in records if "first_audio_sent_ms" in r]
    stages = {
        stage: {
            part: percentiles([r[f"{stage}{suffix}"] for r in complete])
            for part, suffix in (
                ("total", "_ms"),
                ("model", "_model_ms"),
                ("overhead", "_overhead_ms"),
            )
        }
        for stage in STAGES
    }
    overhead = percentiles([r["overhead_ms"] for r in complete])
    return {
        "turns": len(complete),
        "overhead_ms": overhead,
        "decision_to_first_audio_ms": percentiles([r["first_audio_sent_ms"] for r in complete]),
        "stages": stages,
        "target": TARGET,
        "meets_target": bool(overhead)
        and overhead["p50"] < TARGET["overhead_p50_ms"]
        and overhead["p99"] < TARGET["overhead_p99_ms"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scratch_stack(
    config: Config,
    pipelines: list[str],
    scratch: Path,
    env: Mapping[str, str] | None = None,
    *,
    free_worker_ports: bool = False,
    processes: int = 1,
) -> tuple[Config, LocalStack]:
    """The config and (not yet started) processes of a benchmark: a server on a free
    port that stores into ``scratch``, and the pipelines' workers (``env`` added).

    ``free_worker_ports``: the local workers listen on free ports too (written to a
    config file in ``scratch``), so the benchmark never meets another one's workers;
    only when no user config file is in use (it would be replaced). ``processes``: server
    processes sharing the port (one by default: its CPU is what most figures count)."""
    store = dataclasses.replace(
        config.store, database_url=f"sqlite:///{scratch}/bench.db", data_dir=f"{scratch}/data"
    )
    server = dataclasses.replace(config.server, port=free_port())
    config = dataclasses.replace(config, store=store, server=server)
    stack_env = {
        "PARLEY_STORE_DATABASE_URL": store.database_url,
        "PARLEY_STORE_DATA_DIR": store.data_dir,
        "PARLEY_SERVER_PORT": str(server.port),
        **(env or {}),
    }
    config_path = os.environ.get("PARLEY_CONFIG")
    if free_worker_ports and not config_path and not Path("parley.toml").exists():
        config = _workers_on_free_ports(config, pipelines)
        config_path = str(scratch / "ports.toml")
        Path(config_path).write_text(
            "".join(
                f"[pools.{json.dumps(name)}]\naddresses = {json.dumps(list(pool.addresses))}\n"
                for name, pool in config.pools.items()
                if pool.local
            )
        )
    return config, LocalStack(config, pipelines, config_path, env=stack_env, processes=processes)


def _workers_on_free_ports(config: Config, pipelines: list[str]) -> Config:
    pools = dict(config.pools)
    for name in pipelines:
        pipeline = config.pipeline(name)
        for stage in pipeline.stages.values():
            pool = config.pool(stage.pool)
            if pool.local and all(is_loopback(a) for a in pool.addresses):
                free = tuple(f"127.0.0.1:{free_port()}" for _ in pool.addresses)
                pools[pool.name] = dataclasses.replace(pool, addresses=free)
    return dataclasses.replace(config, pools=pools)


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return values


def edge_record(turn: TurnReport) -> dict[str, float]:
    """A turn's latency record plus ``edge_voice_to_voice_ms``: end of speech to the
    first answer audio played, both on the edge's clock (here: when it arrived)."""
    v2v = turn.voice_to_voice_ms
    return {**turn.latency_ms, **({"edge_voice_to_voice_ms": v2v} if v2v is not None else {})}


@dataclass
class TurnRun:
    records: list[dict[str, float]]  # the counted turns' latency records
    cpu_seconds: float  # CPU the server and workers used over the counted turns


async def bench_turns(
    config: Config,
    pipeline: str,
    turns: int,
    warmup: int,
    *,
    fast: bool = False,
    env: Mapping[str, str] | None = None,
    settle_s: float = 0.0,
) -> TurnRun:
    """Run ``warmup + turns`` turns through freshly started processes (``env`` added to
    theirs). ``settle_s``: wait after the last turn so background work (span export)
    is counted in the CPU time."""
    from edge.headless import HeadlessEdge

    records: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as scratch:
        config, stack = scratch_stack(config, [pipeline], Path(scratch), env)
        port = config.server.port
        started = await stack.start()
        try:
            if len(started) != len(stack.specs):
                raise ParleyError(
                    "some of the benchmark's workers are already running (e.g. a `parley up`); "
                    "stop them so the benchmark measures processes it started itself"
                )
            edge = dataclasses.replace(
                config.edge, server=f"127.0.0.1:{port}", pipeline=pipeline, device_id="bench"
            )
            pids = [process.pid for process in stack.started.values()]
            cpu_before = 0.0
            for i in range(warmup + turns):
                if i == warmup:
                    cpu_before = sum(map(process_cpu_seconds, pids))
                # Real-time pacing by default: audio keeps arriving every 20 ms while
                # the pipeline runs, as it does from a microphone.
                runner = HeadlessEdge(edge, fast=fast, trailing_silence_s=0.8)
                report = await runner.run(DEMO_WAV, Path(scratch) / "out.wav")
                if i >= warmup:
                    records += [edge_record(t) for t in report.turns if t.latency_ms]
            await asyncio.sleep(settle_s)
            cpu = sum(map(process_cpu_seconds, pids)) - cpu_before
        finally:
            stack.stop()
    return TurnRun(records, cpu)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_output(args: argparse.Namespace, text: str) -> None:
    """Write ``text`` to --output, if given (checked writable when the arguments were
    parsed; ParleyError if it failed since). Call it after printing ``text``, so the
    result is never lost."""
    if not args.output:
        return
    try:
        Path(args.output).write_text(text + "\n")
    except OSError as exc:
        raise ParleyError(
            f"--output {args.output}: cannot be written ({exc.strerror or exc}); "
            "the result was printed above"
        ) from None


def report(result: dict[str, Any], args: argparse.Namespace, summary: str | None = None) -> None:
    """Print the JSON object (and write it to --output); then, without --json, the
    one-line summary."""
    text = json.dumps(result, indent=2)
    print(text)
    if summary is not None and not args.json:
        print(summary)
    write_output(args, text)
