"""`parley edge`: the headless edge agent (a WAV in, the answers' WAV out)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path

from parley.config import Config


def run_edge(args: argparse.Namespace, config: Config) -> int:
    from edge.headless import HeadlessEdge

    edge_config = config.edge
    overrides = {"server": args.server, "pipeline": args.pipeline, "device_id": args.device_id}
    edge_config = dataclasses.replace(edge_config, **{k: v for k, v in overrides.items() if v})
    report = asyncio.run(
        HeadlessEdge(edge_config, fast=args.fast).run(Path(args.wav), Path(args.out))
    )
    if args.json:
        print(
            json.dumps(
                {
                    "session_id": report.session_id,
                    "pipeline": report.pipeline,
                    "output": report.output,
                    "errors": report.errors,
                    "turns": [t.as_dict() for t in report.turns],
                },
                indent=2,
            )
        )
    else:
        for turn in report.turns:
            print(f"turn {turn.turn_id}: heard {turn.transcript!r} -> answered {turn.response!r}")
        print(f"answers written to {report.output}")
    return 1 if report.errors else 0
