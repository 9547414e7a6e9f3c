"""The `parley` command: one entry point for every role.

This is the composition root: the only place that reads argv, loads the config and
imports the roles (lazily, so the edge never needs the server's dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from parley import __version__
from parley.arguments import (
    frame_size,
    in_range,
    non_negative_float,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    sound_file,
)
from parley.config import Config, WorkersConfig, load_config
from parley.config_values import split_address
from parley.errors import ParleyError
from parley.kinds import KINDS
from parley.signals import terminated

# Audio per AudioChunk: the server refuses more than [limits] max_audio_chunk_ms (5000).
CHUNK_MS = in_range(int, 1, 5000)
Handler = Callable[[argparse.Namespace, Config], int]
# --output of the benchmarks: checked at parse time (parley.arguments.output_file)
OUTPUT_HELP = "also write the JSON object to this file, which must be writable (default: none)"
INSECURE_HELP = (
    "listen beyond loopback even with no authentication at all (a trusted network only; "
    "see docs/security.md)"
)


def _address_type(any_port: bool = False, empty_host: bool = False) -> Callable[[str], str]:
    """An argparse type checking HOST:PORT with parley.config_values.split_address."""

    def address(text: str) -> str:
        try:
            split_address(text, any_port=any_port, empty_host=empty_host)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip()

    return address


# --server: a port from 1 to 65535. --listen: port 0 picks a free one; ":PORT" keeps
# the configured host.
server_address = _address_type()
listen_address = _address_type(any_port=True, empty_host=True)


def _options(pairs: Sequence[str]) -> dict[str, object]:
    """KEY=VALUE pairs; values that look like numbers or booleans are converted."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ParleyError(f"--option needs KEY=VALUE, got {pair!r}")
        parsed: object = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    parsed = kind(value)
                    break
                except ValueError:
                    continue
        out[key] = parsed
    return out


def cmd_server(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.server import run_server

    return run_server(args, config)


def cmd_worker(args: argparse.Namespace, config: Config) -> int:
    from parley.telemetry import setup_telemetry
    from workers.main import serve_worker

    if args.pool:
        pool = config.pool(args.pool)
        stage, engine, options = pool.stage, pool.engine, dict(pool.options)
        address = args.listen or pool.addresses[0]
        security = pool.security
    else:
        if not (args.stage and args.engine):
            raise ParleyError("give STAGE and --engine, or --pool NAME")
        stage, engine, options = args.stage, args.engine, {}
        address = args.listen or "127.0.0.1:0"
        security = config.workers
    security = _worker_security(security, args)
    if args.model:
        options["model"] = args.model
    options.update(_options(args.option))
    telemetry = setup_telemetry(
        f"parley-worker-{stage}",
        database_url=config.database_url,
        attributes={"parley.engine": engine},
    )
    asyncio.run(serve_worker(stage, engine, options, address, telemetry, security))
    return 0


def _worker_security(security: WorkersConfig, args: argparse.Namespace) -> WorkersConfig:
    """The worker's [workers]/pool settings with its command-line flags applied."""
    import dataclasses

    changes = {
        key: value
        for key in ("tls_cert", "tls_key", "tls_client_ca")
        if (value := getattr(args, key))
    }
    if args.insecure:
        changes["insecure"] = True
    return dataclasses.replace(security, **changes)


def cmd_edge(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.edge import run_edge

    return run_edge(args, config)


def cmd_device(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.device import run_device

    return run_device(args, config)


def cmd_up(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.up import run_up

    return run_up(args, config)


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.demo import run_demo

    return run_demo(args, config)


def cmd_models(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.models import run_models

    return run_models(args, config)


def cmd_index(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.index import run_index

    return run_index(args, config)


def cmd_trace(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.trace import run_trace

    return run_trace(args, config)


def cmd_db(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.db import run_db

    return run_db(args, config)


def cmd_dataset(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.dataset import run_dataset

    return run_dataset(args, config)


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.replay import run_replay

    return run_replay(args, config)


def cmd_compare(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.compare import run_compare

    return run_compare(args, config)


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    if args.bench_command == "replay":
        from parley.commands.bench_replay import run_bench_replay

        return run_bench_replay(args, config)
    if args.bench_command == "tracing":
        from parley.commands.bench_tracing import run_bench_tracing

        return run_bench_tracing(args, config)
    if args.bench_command == "admin":
        from parley.commands.bench_admin import run_bench_admin

        return run_bench_admin(args, config)
    if args.bench_command == "edge":
        from parley.commands.bench_edge import run_bench_edge

        return run_bench_edge(args, config)
    if args.bench_command == "chaos":
        from parley.commands.bench_chaos import run_bench_chaos

        return run_bench_chaos(args, config)
    if args.bench_command == "endpointing":
        from parley.commands.bench_endpointing import run_bench_endpointing

        return run_bench_endpointing(args, config)
    if args.bench_command == "load":
        from parley.commands.bench_load import run_bench_load

        return run_bench_load(args, config)
    from parley.commands.bench_turn_taking import run_turn_taking

    return run_turn_taking(args, config)


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser whose options may require others: ``requires[dest] =
    (other_dest, message)`` fails with usage when ``dest`` is given without ``other``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requires: dict[str, tuple[str, str]] = {}

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for dest, (other, message) in self.requires.items():
            if getattr(parsed, dest, None) and not getattr(parsed, other, None):
                self.error(message)
        return parsed, extras


def _edge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        type=server_address,
        help="HOST:PORT of the server (default: [edge] server, 127.0.0.1:<server port>)",
    )
    p.add_argument("--pipeline", help="pipeline name (default: the server's default pipeline)")
    p.add_argument(
        "--device-id", help="device id (default: the hostname; its token: $PARLEY_EDGE_TOKEN)"
    )
    p.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    p.add_argument(
        "--dry-run", action="store_true", help="check the devices and the server, then exit"
    )
    audio = p.add_argument_group("audio")
    audio.add_argument(
        "--mic",
        metavar="DEVICE",
        help="input device: index or part of its name (default: the system's)",
    )
    audio.add_argument(
        "--mic-file",
        type=sound_file,
        metavar="WAV",
        help="play a PCM16 WAV in a loop as the mic (default: none)",
    )
    audio.add_argument(
        "--speaker", metavar="DEVICE", help="output device, or 'none' (default: the system's)"
    )
    audio.add_argument(
        "--full-duplex",
        action="store_true",
        help="keep the mic live while answers play (needs echo cancellation; allows barge-in)",
    )
    audio.add_argument(
        "--buffer-s",
        type=non_negative_float,
        metavar="S",
        help="seconds of audio kept while offline (default 30)",
    )
    camera = p.add_argument_group("camera")
    camera.add_argument(
        "--camera",
        choices=["auto", "picamera2", "folder", "none"],
        help="frame source (default auto: the folder if given, else a Pi camera if any)",
    )
    camera.add_argument(
        "--camera-folder", metavar="DIR", help="send the JPEGs in DIR in turn (default: none)"
    )
    camera.add_argument("--no-camera", action="store_true", help="send no frames")
    camera.add_argument("--fps", type=positive_float, help="frames per second (default 1)")
    camera.add_argument(
        "--size", type=frame_size, metavar="WxH", help="Pi camera frame size (default 640x480)"
    )
    tls = p.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    tls.add_argument(
        "--ca", metavar="PEM", help="CA certificate to trust, implies TLS (default: none)"
    )
    tls.add_argument("--cert", metavar="PEM", help="client certificate, mutual TLS (default: none)")
    tls.add_argument("--key", metavar="PEM", help="client key, mutual TLS (default: none)")
    tls.add_argument(
        "--server-name", help="name to expect in the server's certificate (default: its host)"
    )
    headless = p.add_argument_group("headless (a recording instead of devices)")
    headless.add_argument(
        "--wav",
        type=sound_file,
        help="speech recording to stream, WAV/FLAC (default: none, use the microphone); e.g. "
        "parley/assets/turn_on_the_living_room_lamp.wav",
    )
    headless.add_argument(
        "--out",
        type=output_file,
        help="WAV file the answers are written to (default: none; needed with --wav)",
    )
    headless.add_argument("--fast", action="store_true", help="no real-time pacing")
    headless.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--stats-file", help=argparse.SUPPRESS)
    if isinstance(p, CommandParser):
        p.requires["wav"] = ("out", "--wav needs --out (the WAV the answers are written to)")


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.doctor import run_doctor

    return run_doctor(args, config)


def cmd_admin(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.admin import run_admin

    return run_admin(args, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley voice-assistant stack")
    parser.add_argument(
        "--config", help="TOML config file (default: $PARLEY_CONFIG or ./parley.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"parley {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    p = sub.add_parser("server", help="run the Converse server")
    p.add_argument(
        "--listen",
        type=listen_address,
        help="HOST:PORT (default: [server] host and port, base_port + 1)",
    )
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    p.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="server processes sharing the port (default [server] processes: one per core)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="one process that shares its port with other `parley server`s (SO_REUSEPORT)",
    )
    p.add_argument(
        "--ready-fd", type=non_negative_int, help=argparse.SUPPRESS
    )  # set by the supervisor
    p.set_defaults(handler=cmd_server)

    p = sub.add_parser("worker", help="run one stage worker (stt, llm, tts, speech_llm, ...)")
    p.add_argument(
        "stage", nargs="?", choices=list(KINDS), help="the stage kind (default: the pool's)"
    )
    p.add_argument(
        "--engine",
        help="engine name, e.g. faster_whisper, llama_cpp, piper, openai, onnx_audio, index, "
        "or one an installed package adds (entry point group parley.engines; default: the pool's)",
    )
    p.add_argument(
        "--pool", help="take stage, engine and options from this configured pool (default: none)"
    )
    p.add_argument(
        "--model", help="model name or path, the engine option `model` (default: the pool's)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option, repeatable, e.g. --option compute_type=int8 (default: none)",
    )
    p.add_argument(
        "--listen",
        type=listen_address,
        help="HOST:PORT (default: the pool's first address, else a free port)",
    )
    p.add_argument(
        "--tls-cert", metavar="PEM", help="the worker's certificate (TLS; default: none)"
    )
    p.add_argument("--tls-key", metavar="PEM", help="the worker's key (TLS; default: none)")
    p.add_argument(
        "--tls-client-ca", metavar="PEM", help="require callers' certificates (mTLS; default: off)"
    )
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser(
        "edge", help="run the edge agent: mic, speaker, camera (headless: --wav IN --out OUT)"
    )
    _edge_arguments(p)
    p.set_defaults(handler=cmd_edge)

    p = sub.add_parser(
        "up", help="start the server, the local workers and the admin, wait until healthy"
    )
    p.add_argument(
        "--pipeline",
        action="append",
        help="a pipeline whose workers to start, repeatable (default: [server] default_pipeline)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="start the server and the workers --insecure"
    )
    p.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="server processes (default: [server] processes, one per core)",
    )
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("device", help="per-device tokens for edges (on the server's store)")
    dsub = p.add_subparsers(dest="device_command", required=True)
    add = dsub.add_parser("add", help="issue a token for a device and print it (shown once)")
    add.add_argument("name", help="the device id the edge sends (its hostname by default)")
    add.add_argument("--replace", action="store_true", help="revoke its current token first")
    revoke = dsub.add_parser("revoke", help="revoke a device's token: its next Hello is refused")
    revoke.add_argument("name", help="the device whose token to revoke")
    listing = dsub.add_parser("list", help="devices with tokens, when made, when last seen")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="machine-readable list")
    p.set_defaults(handler=cmd_device)

    p = sub.add_parser("demo", help="run one spoken turn end to end and print a summary")
    p.add_argument(
        "--wav",
        type=sound_file,
        help="speech recording (default: parley/assets/turn_on_the_living_room_lamp.wav)",
    )
    p.add_argument("--pipeline", help="pipeline (default: local if its models exist, else tiny)")
    p.add_argument("--out", type=output_file, help="answer WAV (default: <home>/demo-answer.wav)")
    p.add_argument("--fast", action="store_true", help="no real-time pacing")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("models", help="download or build models")
    msub = p.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="download the real default models (local pipeline)")
    pull.add_argument(
        "--only",
        choices=["stt", "llm", "tts", "turn", "analyse"],
        action="append",
        help="only this stage's models, repeatable "
        "(default: stt, llm, tts and turn, the end-of-turn model; analyse if asked)",
    )
    msub.add_parser("tiny", help="build the tiny offline test models (tiny pipeline)")
    msub.add_parser("list", help="show which pipelines have their model files")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("index", help="retrieval indexes of document folders (retrieve stage)")
    isub = p.add_subparsers(dest="index_command", required=True)
    build = isub.add_parser("build", help="chunk, embed and index the documents in DIR")
    build.add_argument("name", help="the index's name (file <home>/indexes/NAME.sqlite)")
    build.add_argument("folder", metavar="DIR", help="folder of .txt/.md/.rst documents")
    build.add_argument(
        "--embedder",
        choices=["llama_cpp", "openai"],
        default="llama_cpp",
        help="where embeddings come from (default: llama_cpp, a local GGUF)",
    )
    build.add_argument(
        "--model",
        help="GGUF path (llama_cpp: required) or embeddings model name "
        "(openai; default: text-embedding-3-small)",
    )
    build.add_argument(
        "--pooling",
        choices=["mean", "cls", "last", "model"],
        default="mean",
        help="how llama.cpp pools token embeddings (default: mean; model: the GGUF's own)",
    )
    build.add_argument(
        "--base-url", help="OpenAI-compatible server (openai embedder; default: OPENAI_BASE_URL)"
    )
    build.add_argument(
        "--chunk-chars",
        type=positive_int,
        default=800,
        help="passage size in characters (default 800)",
    )
    build.add_argument(
        "--overlap",
        type=non_negative_int,
        default=1,
        help="sentences repeated between passages (default 1)",
    )
    for q in (build, isub.add_parser("query", help="the passages nearest to TEXT")):
        q.add_argument(
            "--database-url",
            help="postgresql://... to keep the index in pgvector instead "
            "(default: SQLite, <home>/indexes/NAME.sqlite)",
        )
        q.add_argument("--json", action="store_true", help="machine-readable output")
    query = isub.choices["query"]
    query.add_argument("name", help="the index's name")
    query.add_argument("text", help="what to look for")
    query.add_argument("--top-k", type=positive_int, default=3, help="passages to show (default 3)")
    isub.add_parser("list", help="the SQLite indexes in <home>/indexes")
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("trace", help="read stored traces")
    tsub = p.add_subparsers(dest="trace_command", required=True)
    show = tsub.add_parser("show", help="the spans of one trace (a turn)")
    show.add_argument("trace_id", help="the trace id (parley demo --json prints it)")
    show.add_argument("--json", action="store_true", help="machine-readable list of spans")
    p.set_defaults(handler=cmd_trace)

    p = sub.add_parser("db", help="the store's schema: status, upgrade")
    dsub = p.add_subparsers(dest="db_command", required=True)
    status = dsub.add_parser("status", help="applied and pending schema steps")
    status.add_argument("--json", action="store_true", help="machine-readable")
    dsub.add_parser("upgrade", help="create missing tables, apply pending steps")
    p.set_defaults(handler=cmd_db)

    p = sub.add_parser("admin", help="the annotation and benchmark site (needs parley[admin])")
    asub = p.add_subparsers(dest="admin_command", required=True)
    serve = asub.add_parser("serve", help="serve the site (default 127.0.0.1:50080)")
    serve.add_argument(
        "--listen",
        type=listen_address,
        help="HOST:PORT (default: [admin] host and port, base_port + 30)",
    )
    user = asub.add_parser(
        "create-user", help="add an account (password: $PARLEY_ADMIN_PASSWORD or a prompt)"
    )
    user.add_argument("name", help="the user name (1 to 64 characters)")
    user.add_argument(
        "--role",
        choices=["annotator", "admin"],
        default="annotator",
        help="what the account may do (default: annotator)",
    )
    user.add_argument("--update", action="store_true", help="change an existing account")
    asub.add_parser("users", help="list the accounts")
    sample = asub.add_parser(
        "seed-sample", help="fill an empty store with sample turns and annotations to try the site"
    )
    sample.add_argument(
        "--turns", type=non_negative_int, default=200, help="how many sample turns (default: 200)"
    )
    sample.add_argument(
        "--media-turns",
        type=non_negative_int,
        default=100,
        help="the oldest this many get audio and a frame in the data directory (default: 100)",
    )
    sample.add_argument(
        "--force", action="store_true", help="add them even if the store holds turns already"
    )
    p.set_defaults(handler=cmd_admin)

    _research_parsers(sub)

    p = sub.add_parser(
        "doctor", help="check this machine: Python, extras, devices, models, ports, database"
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=cmd_doctor)

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
        "--seconds", type=positive_float, default=60.0, help="audio per stream (default 60)"
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
        type=positive_int,
        default=1,
        help="server processes sharing the port, for the server it starts (default 1)",
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
    return parser


def _research_parsers(sub: Any) -> None:
    """`parley dataset`, `parley replay`, `parley compare` (docs/research.md)."""
    p = sub.add_parser("dataset", help="datasets of recordings with references, to replay")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    imp = dsub.add_parser("import", help="a folder of recordings plus a manifest")
    imp.add_argument("name", help="the new dataset's name")
    imp.add_argument("folder", help="folder holding the recordings")
    imp.add_argument(
        "--references",
        metavar="FILE",
        help="TSV/CSV/JSONL manifest, *.trans.txt, Common Voice TSV (default: found in FOLDER)",
    )
    imp.add_argument(
        "--layout",
        choices=["auto", "table", "jsonl", "librispeech", "commonvoice", "folder"],
        default="auto",
        help="manifest layout (default: auto, detected)",
    )
    turns = dsub.add_parser("from-turns", help="stored turns: their audio, frames, corrections")
    turns.add_argument("name", help="the new dataset's name")
    turns.add_argument(
        "--group", help="an admin turn group (id or name): one conversation (default: none)"
    )
    turns.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "the admin turn list's filters, e.g. pipeline=local, annotated=yes "
            "(repeatable; default: none)"
        ),
    )
    turns.add_argument(
        "--multi-turn", action="store_true", help="keep each conversation's turns together"
    )
    for q in (imp, turns):
        q.add_argument(
            "--tag", action="append", default=[], help="tag every item (repeatable; default: none)"
        )
        q.add_argument("--new-version", action="store_true", help="add a version to NAME")
        q.add_argument("--description", default="", help="what the dataset is for (default: none)")
        q.add_argument("--json", action="store_true", help="print the dataset as JSON")
    exp = dsub.add_parser("export", help="recordings + manifest.jsonl into an empty folder")
    exp.add_argument(
        "dataset", metavar="NAME[@VERSION]", help="the dataset (default version: the latest)"
    )
    exp.add_argument("folder", help="an empty or new folder to write into")
    lst = dsub.add_parser("list", help="every dataset version")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    show = dsub.add_parser("show", help="one dataset's items and runs")
    show.add_argument(
        "dataset", metavar="NAME[@VERSION]", help="the dataset (default version: the latest)"
    )
    show.add_argument("--json", action="store_true", help="print the dataset as JSON")
    p.set_defaults(handler=cmd_dataset)

    p = sub.add_parser("replay", help="stream a dataset through pipelines (the Converse path)")
    p.add_argument(
        "dataset", metavar="NAME[@VERSION]", help="the dataset (default version: the latest)"
    )
    p.add_argument(
        "--pipeline",
        action="append",
        required=True,
        help="a pipeline to replay through, repeatable (no default: at least one)",
    )
    p.add_argument(
        "--pace",
        choices=["realtime", "fast"],
        default="realtime",
        help="realtime (default: latency as in live use) or fast (no voice-to-voice)",
    )
    p.add_argument(
        "--concurrency", type=positive_int, default=1, help="streams at a time (default 1)"
    )
    p.add_argument(
        "--run",
        help=(
            "run name (NAME-PIPELINE for several; default: DATASET-vN-PIPELINE-TIME); "
            "an existing run is resumed"
        ),
    )
    p.add_argument(
        "--server",
        type=server_address,
        help="use this running server (default: start one like `parley demo`)",
    )
    p.add_argument(
        "--answer-timeout",
        type=positive_float,
        default=120.0,
        help="seconds per item (default 120)",
    )
    p.add_argument("--json", action="store_true", help="print each run's tally as JSON")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("compare", help="runs of one dataset side by side")
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run names, or #ID for a run's id (a plain number is a name if a run has it, "
        "else an id); the first is the baseline (no default)",
    )
    p.add_argument(
        "--tag",
        help="only the items with this tag; a tag no item has is an error (default: every item)",
    )
    p.add_argument(
        "--items", type=non_negative_int, default=20, help="item rows shown (default 20)"
    )
    p.add_argument(
        "--resamples",
        type=in_range(int, 1, 100_000),
        default=1000,
        help="bootstrap resamples, 1 to 100000 (default 1000)",
    )
    p.add_argument("--json", action="store_true", help="everything, every item, as JSON")
    p.set_defaults(handler=cmd_compare)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
        handler: Handler = args.handler
        return handler(args, config)
    except ParleyError as exc:
        print(f"parley: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM where a command took it as one
        return 128 + (signal.SIGTERM if terminated() else signal.SIGINT)


if __name__ == "__main__":
    raise SystemExit(main())
