"""`parley dataset`, `parley replay` and `parley compare`: their options and
handlers (the commands live in parley/commands/, imported only when run)."""

from __future__ import annotations

import argparse
from typing import Any

from parley.arguments import (
    in_range,
    non_negative_int,
    positive_float,
    positive_int,
    server_address,
)
from parley.config import Config


def cmd_dataset(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.dataset import run_dataset

    return run_dataset(args, config)


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.replay import run_replay

    return run_replay(args, config)


def cmd_compare(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.compare import run_compare

    return run_compare(args, config)


def add_research_parsers(sub: Any) -> None:
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
