"""`parley edge`: the edge agent.

- `parley edge --server HOST:PORT`: the always-on agent (microphone, speaker, camera,
  reconnects); runs until SIGINT/SIGTERM.
- `parley edge --wav IN --out OUT`: headless, one recording in, the answers' WAV out.
- `parley edge --list-devices` / `--dry-run`: look at the sound devices / check the
  devices and the server, then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.commands.summary import latency_lines
from parley.config import Config, EdgeConfig

if TYPE_CHECKING:
    from edge.headless import SessionReport

log = logging.getLogger("edge")
WORKERS_DOWN = 3  # exit status: a turn failed because the pipeline's workers are down


def edge_config(args: argparse.Namespace, base: EdgeConfig) -> EdgeConfig:
    """The config file's [edge] section with the command line's overrides."""
    overrides: dict[str, Any] = {
        "server": args.server,
        "pipeline": args.pipeline,
        "device_id": args.device_id,
        "mic_device": args.mic,
        "mic_file": args.mic_file,
        "speaker_device": args.speaker,
        "camera": "none" if args.no_camera else args.camera,
        "camera_folder": args.camera_folder,
        "camera_fps": args.fps,
        "buffer_s": args.buffer_s,
        "tls_ca": args.ca,
        "tls_cert": args.cert,
        "tls_key": args.key,
        "tls_server_name": args.server_name,
    }
    if args.full_duplex:
        overrides["full_duplex"] = True
    if args.tls:
        overrides["tls"] = True
    if args.camera_folder and not (args.camera or args.no_camera):
        overrides["camera"] = "folder"
    if args.size:
        overrides["camera_width"], overrides["camera_height"] = args.size  # parsed WxH
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def run_edge(args: argparse.Namespace, config: Config) -> int:
    if args.list_devices:
        from edge.devices import describe_devices

        print(describe_devices())
        return 0
    if args.wav:
        return _run_headless(args, config)
    edge = edge_config(args, config.edge)
    if args.dry_run:
        from edge.dryrun import dry_run

        checks = asyncio.run(dry_run(edge))
        for check in checks:
            print(check.line())
        return 0 if all(c.ok for c in checks) else 1
    return run_agent(edge, Path(args.stats_file) if args.stats_file else None)


def run_agent(config: EdgeConfig, stats_file: Path | None = None) -> int:
    from edge import build

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        agent = build.agent(config)
        camera = agent.camera.describe() if agent.camera else "none"
        log.info(
            "edge %s: microphone %s, speaker %s, camera %s, %s",
            config.device_id,
            agent.source.describe(),
            agent.speaker.describe(),
            camera,
            "full-duplex" if config.full_duplex else "half-duplex",
        )
        try:
            await agent.run(stop)
        finally:
            stats = agent.snapshot()
            log.info("edge stopped: %s", ", ".join(f"{k} {v}" for k, v in stats.items()))
            stats_out.update(stats)

    stats_out: dict[str, int] = {}
    try:
        asyncio.run(main())
    finally:
        if stats_file is not None:
            stats_file.write_text(json.dumps(stats_out, indent=2) + "\n")
    return 0


def _run_headless(args: argparse.Namespace, config: Config) -> int:
    from edge.headless import EdgeError, HeadlessEdge

    edge_config = config.edge
    overrides = {"server": args.server, "pipeline": args.pipeline, "device_id": args.device_id}
    edge_config = dataclasses.replace(edge_config, **{k: v for k, v in overrides.items() if v})
    headless = HeadlessEdge(edge_config, fast=args.fast)
    refused = ""
    try:
        report = asyncio.run(headless.run(Path(args.wav), Path(args.out)))
    except EdgeError as exc:  # refused (bad token, store failure) or the stream broke
        report, refused = headless.report, str(exc)
    if args.json:
        print(json.dumps(_json_report(report, refused), indent=2))
    else:
        _print_report(report)
        if refused:
            print(f"parley edge: error: {refused}", file=sys.stderr)
    if report.unavailable:
        pipeline = report.pipeline or edge_config.pipeline or config.server.default_pipeline
        stages = ", ".join(sorted(report.unavailable))
        print(
            f"parley edge: the {pipeline!r} pipeline's {stages} workers are down "
            f"({next(iter(report.unavailable.values()))}); "
            f"start its workers: parley up --pipeline {pipeline}",
            file=sys.stderr,
        )
        return WORKERS_DOWN
    return 1 if report.errors or refused else 0


def _json_report(report: SessionReport, refused: str) -> dict[str, Any]:
    """The --json object: always printed, with ``error`` set when the stream failed."""
    return {
        "session_id": report.session_id,
        "pipeline": report.pipeline,
        "output": report.output or None,
        "error": refused or None,
        "errors": report.errors,
        "turns": [t.as_dict() for t in report.turns],
    }


def _print_report(report: SessionReport) -> None:
    for turn in report.turns:
        print(f"turn {turn.turn_id}")
        print(f"  heard:    {turn.transcript!r}")
        print(f"  answered: {turn.response!r}")
        if turn.error:
            print(f"  error:    {turn.error}")
        if turn.stored is False:
            print("  stored:   no (the server could not store this turn)")
        for line in latency_lines(turn.latency_ms, turn.voice_to_voice_ms):
            print(f"  {line}")
    if report.output:
        print(f"answers written to {report.output}")
