"""`parley bench ...`: the benchmarks' options, and the handler that runs the one
asked for (each lives in parley/commands/bench_*.py, imported only when run)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from parley.arguments import (
    in_range,
    non_negative_float,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    process_count_arg,
    server_address,
    sound_file,
)
from parley.config import Config

# Audio per AudioChunk: the server refuses more than [limits] max_audio_chunk_ms (5000).
CHUNK_MS = in_range(int, 1, 5000)
# --output of the benchmarks: checked at parse time (parley.arguments.output_file)
OUTPUT_HELP = "also write the JSON object to this file, which must be writable (default: none)"


# Each benchmark's module under parley/commands and its entry point (imported only
# when run: most pull in heavy dependencies).
BENCHES = {
    "replay": ("bench_replay", "run_bench_replay"),
    "tracing": ("bench_tracing", "run_bench_tracing"),
    "admin": ("bench_admin", "run_bench_admin"),
    "edge": ("bench_edge", "run_bench_edge"),
    "chaos": ("bench_chaos", "run_bench_chaos"),
    "endpointing": ("bench_endpointing", "run_bench_endpointing"),
    "load": ("bench_load", "run_bench_load"),
    "turn": ("bench_turn_taking", "run_turn_taking"),
}


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    module, function = BENCHES[args.bench_command]
    run = getattr(importlib.import_module(f"parley.commands.{module}"), function)
    return int(run(args, config))


def add_bench_parser(sub: Any) -> None:
    """`parley bench` and its subcommands, on the top-level subparsers ``sub``."""
    p = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    tracing = bsub.add_parser("tracing", help="CPU and latency cost of tracing, by mode")
    tracing.add_argument(
        "--turns", type=positive_int, default=30, help="turns per mode (default: 30)"
    )
    tracing.add_argument("--json", action="store_true", help="print only the JSON object")
    tracing.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    adm = bsub.add_parser("admin", help="admin page times on a seeded store of N turns")
    adm.add_argument(
        "--turns", type=positive_int, default=100_000, help="turns seeded (default: 100000)"
    )
    adm.add_argument(
        "--repeat", type=positive_int, default=7, help="timed requests per page (default: 7)"
    )
    adm.add_argument("--json", action="store_true", help="print only the JSON object")
    adm.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    turn = bsub.add_parser(
        "turn", help="voice-to-voice and framework overhead, per turn-taking setting"
    )
    turn.add_argument(
        "--turns", type=positive_int, default=30, help="turns per setting (default: 30)"
    )
    turn.add_argument(
        "--settings",
        help="turn-taking settings compared, STRATEGY[@MIN_SILENCE_MS][+preemptive], comma "
        "separated (default: silence@500,silence@500+preemptive,smart_turn+preemptive)",
    )
    turn.add_argument("--fast", action="store_true", help="stream audio unpaced")
    turn.add_argument(
        "--engines",
        choices=["instant", "tiny"],
        default="instant",
        help="engines behind the workers (default: instant)",
    )
    turn.add_argument("--json", action="store_true", help="print only the JSON object")
    turn.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    edge = bsub.add_parser("edge", help="edge CPU and memory while streaming audio and frames")
    edge.add_argument(
        "--seconds", type=positive_float, default=30.0, help="measured time (default 30)"
    )
    edge.add_argument(
        "--devices",
        action="store_true",
        help="use the default sound devices (default: a WAV file as microphone, no speaker)",
    )
    edge.add_argument("--json", action="store_true", help="print only the JSON object")
    edge.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    rep = bsub.add_parser("replay", help="replay throughput, and compare time at 10k items")
    rep.add_argument("--items", type=positive_int, default=60, help="items replayed (default 60)")
    rep.add_argument(
        "--concurrency", type=positive_int, default=4, help="streams at a time (default 4)"
    )
    rep.add_argument(
        "--compare-items",
        type=positive_int,
        default=10_000,
        help="items per run compared (default 10000)",
    )
    rep.add_argument("--repeat", type=positive_int, default=5, help="timed comparisons (default 5)")
    rep.add_argument("--compare-only", action="store_true", help="skip the replay throughput part")
    rep.add_argument("--json", action="store_true", help="print only the JSON object")
    rep.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    chaos = bsub.add_parser(
        "chaos",
        help="fuzzed messages and faults against real processes: crashes, lost turns, leaks",
    )
    chaos.add_argument("--quick", action="store_true", help="the test suite's short run")
    chaos.add_argument(
        "--seed", type=non_negative_int, help="the fuzzer's and the kills' seed (default 9)"
    )
    chaos.add_argument("--fuzz-sessions", type=positive_int, help="fuzzed streams (default 300)")
    chaos.add_argument(
        "--churn-sessions", type=positive_int, help="measured churn sessions (default 50)"
    )
    chaos.add_argument(
        "--utterances", type=positive_int, help="spoken while the server is killed (default 20)"
    )
    chaos.add_argument("--json", action="store_true", help="print only the JSON object")
    chaos.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    ends = bsub.add_parser(
        "endpointing", help="premature and late turn ends per strategy, on labelled speech"
    )
    ends.add_argument(
        "--strategy",
        help="comma-separated silence[:MS] and smart_turn[:CHECK_AFTER_MS] "
        "(default: silence:200, silence:500 and smart_turn)",
    )
    ends.add_argument(
        "--min-silence-ms",
        type=positive_int,
        help="silence without :MS (default: [vad] min_silence_ms)",
    )
    ends.add_argument("--model", help="Smart Turn ONNX file (default: [turn] model_path)")
    ends.add_argument("--labels", help="labels.json (default: tests/data/endpointing/)")
    ends.add_argument(
        "--clip", action="append", help="only clips whose file has this, repeatable (default: all)"
    )
    ends.add_argument(
        "--late-ms",
        type=positive_float,
        default=1000.0,
        help="a true end later is late (default 1000)",
    )
    ends.add_argument("--json", action="store_true", help="print only the JSON object")
    ends.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    load = bsub.add_parser("load", help="how many live streams are answered in real time")
    load.add_argument(
        "--streams", type=positive_int, default=50, help="concurrent streams (default 50)"
    )
    load.add_argument(
        "--seconds",
        type=positive_float,
        default=60.0,
        help="audio per stream, at least one cycle of the clip and --gap-s (default 60)",
    )
    load.add_argument(
        "--server",
        metavar="ADDRESS",
        type=server_address,
        help="load this running server instead (default: start one)",
    )
    load.add_argument("--pipeline", default="instant", help="pipeline to ask for (default instant)")
    load.add_argument(
        "--processes",
        type=process_count_arg,
        default=1,
        help="server processes sharing the port, 1 to 64, for the server it starts (default 1)",
    )
    load.add_argument(
        "--token", default="", help="device token, for a server that asks for one (default: none)"
    )
    load.add_argument(
        "--chunk-ms",
        type=CHUNK_MS,
        help="audio per message, 1 to 5000 ms (default [edge] chunk_ms)",
    )
    load.add_argument(
        "--clip", type=sound_file, help="speech file to loop (default: the bundled command)"
    )
    load.add_argument(
        "--gap-s",
        type=non_negative_float,
        default=27.0,
        help="silence after each clip (default 27 s)",
    )
    load.add_argument(
        "--floor",
        action="store_true",
        help="load a server that only takes the messages (no VAD, no turns): what gRPC "
        "alone costs per stream",
    )
    load.add_argument("--find-max", action="store_true", help="step N up until not real time")
    load.add_argument(
        "--step", type=positive_int, default=50, help="--find-max: N grows by this (default 50)"
    )
    load.add_argument(
        "--max-streams",
        type=positive_int,
        default=1000,
        help="--find-max: stop here (default 1000)",
    )
    load.add_argument("--json", action="store_true", help="print only the JSON object")
    load.add_argument("--output", type=output_file, help=OUTPUT_HELP)
    p.set_defaults(handler=cmd_bench)
