"""The `parley` command: one entry point for every role.

This is the composition root: the only place that reads argv, loads the config and
imports the roles (lazily, so the edge never needs the server's dependencies). The
parsers of the larger command groups sit beside it: parley/cli_edge.py (`parley
edge`), parley/cli_bench.py (`parley bench ...`), parley/cli_research.py (`parley
dataset`, `replay`, `compare`); argument types are in parley/arguments.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from parley import __version__
from parley.arguments import (
    CommandParser,
    listen_address,
    non_negative_int,
    output_file,
    positive_int,
    process_count_arg,
    sound_file,
)
from parley.cli_bench import add_bench_parser
from parley.cli_edge import edge_arguments
from parley.cli_research import add_research_parsers
from parley.config import Config, WorkersConfig, load_config
from parley.errors import ParleyError
from parley.kinds import KINDS
from parley.signals import terminated

Handler = Callable[[argparse.Namespace, Config], int]
INSECURE_HELP = (
    "listen beyond loopback even with no authentication at all (a trusted network only; "
    "see docs/security.md)"
)


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
        type=process_count_arg,
        metavar="N",
        help="server processes sharing the port, 1 to 64 (default [server] processes: one "
        "per core)",
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
    edge_arguments(p)
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
        type=process_count_arg,
        metavar="N",
        help="server processes, 1 to 64 (default: [server] processes, one per core)",
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

    add_research_parsers(sub)

    p = sub.add_parser(
        "doctor", help="check this machine: Python, extras, devices, models, ports, database"
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=cmd_doctor)

    add_bench_parser(sub)
    return parser


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
