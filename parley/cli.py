"""The `parley` command: one entry point for every role.

This is the composition root: the only place that reads argv, loads the config and
imports the roles (lazily, so the edge never needs the server's dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from parley.config import Config, WorkersConfig, load_config
from parley.errors import ParleyError

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
    from server.app import serve

    if args.listen:
        host, _, port = args.listen.rpartition(":")
        config = _replace_server(config, host=host or config.server.host, port=int(port))
    if args.insecure:
        config = _replace_server(config, insecure=True)
    asyncio.run(serve(config))
    return 0


def _replace_server(config: Config, **changes: Any) -> Config:
    import dataclasses

    return dataclasses.replace(config, server=dataclasses.replace(config.server, **changes))


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


def cmd_trace(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.trace import run_trace

    return run_trace(args, config)


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    if args.bench_command == "tracing":
        from parley.commands.bench_tracing import run_bench_tracing

        return run_bench_tracing(args, config)
    if args.bench_command == "admin":
        from parley.commands.bench_admin import run_bench_admin

        return run_bench_admin(args, config)
    if args.bench_command == "edge":
        from parley.commands.bench_edge import run_bench_edge

        return run_bench_edge(args, config)
    if args.bench_command == "load":
        from parley.commands.bench_load import run_bench_load

        return run_bench_load(args, config)
    from parley.commands.bench import run_bench

    return run_bench(args, config)


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
    p.add_argument("--server", help="HOST:PORT of the server")
    p.add_argument("--pipeline", help="pipeline name (default: the server's)")
    p.add_argument("--device-id", help="device id (default: hostname; token: $PARLEY_EDGE_TOKEN)")
    p.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    p.add_argument(
        "--dry-run", action="store_true", help="check the devices and the server, then exit"
    )
    audio = p.add_argument_group("audio")
    audio.add_argument("--mic", metavar="DEVICE", help="input device: index or part of its name")
    audio.add_argument("--mic-file", metavar="WAV", help="play a PCM16 WAV in a loop as the mic")
    audio.add_argument("--speaker", metavar="DEVICE", help="output device, or 'none'")
    audio.add_argument(
        "--full-duplex",
        action="store_true",
        help="keep the mic live while answers play (needs echo cancellation; allows barge-in)",
    )
    audio.add_argument("--buffer-s", type=float, metavar="S", help="audio kept while offline")
    camera = p.add_argument_group("camera")
    camera.add_argument("--camera", choices=["auto", "picamera2", "folder", "none"])
    camera.add_argument("--camera-folder", metavar="DIR", help="send the JPEGs in DIR in turn")
    camera.add_argument("--no-camera", action="store_true", help="send no frames")
    camera.add_argument("--fps", type=float, help="frames per second (default 1)")
    camera.add_argument("--size", metavar="WxH", help="Pi camera frame size (default 640x480)")
    tls = p.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    tls.add_argument("--ca", metavar="PEM", help="CA certificate to trust (implies TLS)")
    tls.add_argument("--cert", metavar="PEM", help="client certificate (mutual TLS)")
    tls.add_argument("--key", metavar="PEM", help="client key (mutual TLS)")
    tls.add_argument("--server-name", help="name to expect in the server's certificate")
    headless = p.add_argument_group("headless (a recording instead of devices)")
    headless.add_argument("--wav", help="speech recording to stream (WAV/FLAC)")
    headless.add_argument("--out", help="WAV file the answers are written to")
    headless.add_argument("--fast", action="store_true", help="no real-time pacing")
    headless.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--stats-file", help=argparse.SUPPRESS)
    if isinstance(p, CommandParser):
        p.requires["wav"] = ("out", "--wav needs --out (the WAV the answers are written to)")


def cmd_admin(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.admin import run_admin

    return run_admin(args, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley voice-assistant stack")
    parser.add_argument(
        "--config", help="TOML config file (default: $PARLEY_CONFIG or ./parley.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    p = sub.add_parser("server", help="run the Converse server")
    p.add_argument("--listen", help="HOST:PORT (default from config)")
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    p.set_defaults(handler=cmd_server)

    p = sub.add_parser("worker", help="run one stage worker (stt, llm or tts)")
    p.add_argument("stage", nargs="?", choices=["stt", "llm", "tts"])
    p.add_argument("--engine", help="engine name, e.g. faster_whisper, llama_cpp, piper, openai")
    p.add_argument("--pool", help="take stage, engine and options from this configured pool")
    p.add_argument("--model", help="model name or path (engine option `model`)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option, repeatable (e.g. --option compute_type=int8)",
    )
    p.add_argument("--listen", help="HOST:PORT (default: the pool's first address)")
    p.add_argument("--tls-cert", metavar="PEM", help="the worker's certificate (TLS)")
    p.add_argument("--tls-key", metavar="PEM", help="the worker's key (TLS)")
    p.add_argument("--tls-client-ca", metavar="PEM", help="require callers' certificates (mTLS)")
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser(
        "edge", help="run the edge agent: mic, speaker, camera (headless: --wav IN --out OUT)"
    )
    _edge_arguments(p)
    p.set_defaults(handler=cmd_edge)

    p = sub.add_parser("up", help="start the server and local workers, wait until healthy")
    p.add_argument("--pipeline", action="append", help="pipelines whose workers to start")
    p.add_argument(
        "--insecure", action="store_true", help="start the server and the workers --insecure"
    )
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("device", help="per-device tokens for edges (on the server's store)")
    dsub = p.add_subparsers(dest="device_command", required=True)
    add = dsub.add_parser("add", help="issue a token for a device and print it (shown once)")
    add.add_argument("name", help="the device id the edge sends (its hostname by default)")
    add.add_argument("--replace", action="store_true", help="revoke its current token first")
    revoke = dsub.add_parser("revoke", help="revoke a device's token: its next Hello is refused")
    revoke.add_argument("name")
    listing = dsub.add_parser("list", help="devices with tokens, when made, when last seen")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="machine-readable list")
    p.set_defaults(handler=cmd_device)

    p = sub.add_parser("demo", help="run one spoken turn end to end and print a summary")
    p.add_argument("--wav", help="speech recording (default: a bundled clip)")
    p.add_argument("--pipeline", help="pipeline (default: local if its models exist, else tiny)")
    p.add_argument("--out", help="answer WAV (default: <home>/demo-answer.wav)")
    p.add_argument("--fast", action="store_true", help="no real-time pacing")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("models", help="download or build models")
    msub = p.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="download the real default models (local pipeline)")
    pull.add_argument("--only", choices=["stt", "llm", "tts"], action="append")
    msub.add_parser("tiny", help="build the tiny offline test models (tiny pipeline)")
    msub.add_parser("list", help="show which pipelines have their model files")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("trace", help="read stored traces")
    tsub = p.add_subparsers(dest="trace_command", required=True)
    show = tsub.add_parser("show", help="the spans of one trace (a turn)")
    show.add_argument("trace_id")
    show.add_argument("--json", action="store_true", help="machine-readable list of spans")
    p.set_defaults(handler=cmd_trace)

    p = sub.add_parser("admin", help="the annotation and benchmark site (needs parley[admin])")
    asub = p.add_subparsers(dest="admin_command", required=True)
    serve = asub.add_parser("serve", help="serve the site (default 127.0.0.1:50080)")
    serve.add_argument("--listen", help="HOST:PORT (default from [admin] host and port)")
    user = asub.add_parser(
        "create-user", help="add an account (password: $PARLEY_ADMIN_PASSWORD or a prompt)"
    )
    user.add_argument("name")
    user.add_argument("--role", choices=["annotator", "admin"], default="annotator")
    user.add_argument("--update", action="store_true", help="change an existing account")
    asub.add_parser("users", help="list the accounts")
    p.set_defaults(handler=cmd_admin)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    tracing = bsub.add_parser("tracing", help="CPU and latency cost of tracing, by mode")
    tracing.add_argument("--turns", type=int, default=30)
    tracing.add_argument("--json", action="store_true", help="print only the JSON object")
    tracing.add_argument("--output", help="also write the JSON object to this file")
    adm = bsub.add_parser("admin", help="admin page times on a seeded store of N turns")
    adm.add_argument("--turns", type=int, default=100_000)
    adm.add_argument("--repeat", type=int, default=7, help="timed requests per page")
    adm.add_argument("--json", action="store_true", help="print only the JSON object")
    adm.add_argument("--output", help="also write the JSON object to this file")
    turn = bsub.add_parser("turn", help="framework overhead from VAD decision to first audio")
    turn.add_argument("--turns", type=int, default=30)
    turn.add_argument("--fast", action="store_true", help="stream audio unpaced")
    turn.add_argument("--engines", choices=["instant", "tiny"], default="instant")
    turn.add_argument("--json", action="store_true", help="print only the JSON object")
    turn.add_argument("--output", help="also write the JSON object to this file")
    edge = bsub.add_parser("edge", help="edge CPU and memory while streaming audio and frames")
    edge.add_argument("--seconds", type=float, default=30.0, help="measured time (default 30)")
    edge.add_argument(
        "--devices",
        action="store_true",
        help="use the default sound devices (default: a WAV file as microphone, no speaker)",
    )
    edge.add_argument("--json", action="store_true", help="print only the JSON object")
    edge.add_argument("--output", help="also write the JSON object to this file")
    load = bsub.add_parser("load", help="how many live streams are answered in real time")
    load.add_argument("--streams", type=int, default=50, help="concurrent streams (default 50)")
    load.add_argument("--seconds", type=float, default=60.0, help="audio per stream (default 60)")
    load.add_argument("--server", metavar="ADDRESS", help="load this running server instead")
    load.add_argument("--pipeline", default="instant", help="pipeline to ask for (default instant)")
    load.add_argument("--token", default="", help="device token, for a server that asks for one")
    load.add_argument("--chunk-ms", type=int, help="audio per message (default [edge] chunk_ms)")
    load.add_argument("--clip", help="speech file to loop (default: the bundled command)")
    load.add_argument(
        "--gap-s", type=float, default=27.0, help="silence after each clip (default 27 s)"
    )
    load.add_argument("--find-max", action="store_true", help="step N up until not real time")
    load.add_argument("--step", type=int, default=50, help="--find-max: N grows by this")
    load.add_argument("--max-streams", type=int, default=1000, help="--find-max: stop here")
    load.add_argument("--json", action="store_true", help="print only the JSON object")
    load.add_argument("--output", help="also write the JSON object to this file")
    p.set_defaults(handler=cmd_bench)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
