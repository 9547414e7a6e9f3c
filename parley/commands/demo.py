"""`parley demo`: one real spoken turn through edge, server and workers, summarised.

Uses the `local` pipeline when its models are present, otherwise `tiny` (built on the
spot, offline) with a loud notice. Starts whatever is not already running and stops
what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from parley.commands.launcher import LocalStack
from parley.commands.models import ensure_models, missing_models
from parley.commands.summary import latency_lines
from parley.config import Config
from parley.config_values import join_address

DEMO_WAV = Path(__file__).resolve().parent.parent / "assets" / "turn_on_the_living_room_lamp.wav"


def choose_pipeline(config: Config, requested: str | None) -> tuple[str, str]:
    """The pipeline to use and a notice to print loudly ("" if none)."""
    if requested:
        return requested, config.pipeline(requested).notice
    if "local" in config.pipelines and not missing_models(config, "local"):
        return "local", ""
    return "tiny", (
        "NOTICE: the real models are not installed (run `parley models pull`), so this demo "
        "uses the TINY pipeline. " + config.pipeline("tiny").notice
    )


async def _demo(args: argparse.Namespace, config: Config, pipeline: str) -> dict[str, Any]:
    from edge.headless import HeadlessEdge

    stack = LocalStack(config, [pipeline], args.config, processes=1)  # one turn: one process
    started = await stack.start()
    try:
        edge_config = dataclasses.replace(
            config.edge,
            server=join_address(config.server.host, config.server.port),
            pipeline=pipeline,
            device_id="parley-demo",
        )
        out = Path(args.out) if args.out else config.home / "demo-answer.wav"
        wav = Path(args.wav) if args.wav else DEMO_WAV
        report = await HeadlessEdge(edge_config, fast=args.fast).run(wav, out)
    finally:
        stack.stop()
    turns = [t for t in report.turns if t.transcript or t.error]
    turn = turns[-1] if turns else None
    return {
        "pipeline": pipeline,
        "input": str(wav),
        "output": report.output,
        "turn_id": turn.turn_id if turn else None,
        "trace_id": turn.trace_id if turn else "",
        "transcript": turn.transcript if turn else "",
        "response": turn.response if turn else "",
        "spoken": stored_spoken(config.database_url, turn.turn_id) if turn else [],
        "voice_to_voice_ms": turn.voice_to_voice_ms if turn else None,
        "latency_ms": turn.latency_ms if turn else {},
        "turns": [t.as_dict() for t in report.turns],
        "errors": report.errors,
        "database": config.database_url,
        "started": started,
    }


def stored_spoken(database_url: str, turn_id: str) -> list[str]:
    """The sentences the server sent to the TTS for ``turn_id``, as it stored them."""
    from parley import db

    db.open_database(database_url)
    with db.database.connection_context():
        turn = db.Turn.get_or_none(db.Turn.id == turn_id)
    return list(turn.spoken) if turn is not None else []


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"pipeline:   {summary['pipeline']}")
    print(f"heard:      {summary['transcript']!r}")
    print(f"answered:   {summary['response']!r}")
    print(f"spoke:      {' | '.join(summary['spoken'])!r}")
    print(f"answer WAV: {summary['output']}")
    print(f"turn id:    {summary['turn_id']} (stored in {summary['database']})")
    print(f"trace:      parley trace show {summary['trace_id']}")
    for line in latency_lines(summary["latency_ms"], summary["voice_to_voice_ms"]):
        print(line)
    for error in summary["errors"]:
        print(f"error: {error}")


def run_demo(args: argparse.Namespace, config: Config) -> int:
    pipeline, notice = choose_pipeline(config, args.pipeline)
    if notice:
        bar = "!" * 78
        print(f"{bar}\n{notice}\n{bar}", file=sys.stderr, flush=True)
    ensure_models(config, pipeline)
    summary = asyncio.run(_demo(args, config, pipeline))
    summary["notice"] = notice
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 1 if summary["errors"] or not summary["turn_id"] else 0
