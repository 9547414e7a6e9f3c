"""`parley replay DATASET --pipeline A [--pipeline B ...]`: stream every item of a
dataset through each pipeline over the real Converse path, as runs (research/replay.py).

Like `parley demo`, it starts the server and the pipelines' local workers that are not
already running (and stops what it started); with `--server HOST:PORT` it uses that
running server instead, which must store into the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from parley import rpc
from parley.commands.dataset import research_store
from parley.config import Config
from parley.config_values import join_address
from parley.errors import ParleyError


async def _check_server(address: str) -> None:
    async with rpc.dial(address) as channel:
        if not await rpc.check_health(channel, timeout=5.0):
            raise ParleyError(f"no healthy Parley server at {address}")


def _progress(total: int, runs: Sequence[Any]) -> Any:
    from tqdm import tqdm

    names = ", ".join(r.name for r in runs)
    return tqdm(total=total, unit="item", desc=f"replay {names}"[:60], file=sys.stderr)


async def _replay(args: argparse.Namespace, config: Config, dataset: Any, runs: Any) -> Any:
    from parley import db
    from parley.commands.launcher import LocalStack
    from research.replay import Replayer, ReplayOptions, pending_work

    options = ReplayOptions(
        fast=args.pace == "fast",
        concurrency=args.concurrency,
        answer_timeout_s=args.answer_timeout,
    )
    with db.database.connection_context():
        work, skipped = pending_work(dataset, runs)
    stack = None
    if args.server:
        address = args.server
        await _check_server(address)
    else:
        stack = LocalStack(config, [r.pipeline for r in runs], args.config)
        await stack.start()
        address = join_address(config.server.host, config.server.port)
    bar = _progress(sum(len(unit) for unit, _ in work), runs)
    try:
        edge = dataclasses.replace(config.edge, server=address)
        replayer = Replayer(
            edge, config.data_dir, options, progress=lambda run, statuses: bar.update(len(statuses))
        )
        return await replayer.replay_work(work, runs, skipped)
    finally:
        bar.close()
        if stack is not None:
            stack.stop()


def run_replay(args: argparse.Namespace, config: Config) -> int:
    from parley import db
    from parley.commands.models import ensure_models
    from research import datasets, runs

    if args.concurrency < 1:
        raise ParleyError("--concurrency must be 1 or more")
    pipelines = list(dict.fromkeys(args.pipeline))
    for name in pipelines:
        config.pipeline(name)  # an unknown pipeline fails here, before anything starts
    if args.run is not None:
        runs.check_run_name(args.run)  # so does a name `parley compare` cannot find
    if not args.verbose:  # the progress bar says it; the edge's per-turn lines would not
        logging.getLogger("edge").setLevel(logging.WARNING)
    with research_store(config):
        dataset = datasets.find(args.dataset)
        names = runs.run_names(dataset, pipelines, args.run)
        with db.write_transaction():
            opened = [
                runs.open_run(name, dataset, pipeline, config, args.pace)
                for name, pipeline in zip(names, pipelines, strict=True)
            ]
    rows = [run for run, _ in opened]
    try:
        if not args.server:
            for name in pipelines:
                ensure_models(config, name)
        tallies = asyncio.run(_replay(args, config, dataset, rows))
    except BaseException:
        with research_store(config):  # runs this command made but never filled go
            runs.discard_empty([run for run, created in opened if created])
        raise
    if args.json:
        print(json.dumps([dataclasses.asdict(t) for t in tallies], indent=2))
    else:
        for tally in tallies:
            print(
                f"run {tally.run} ({tally.pipeline}): {tally.done} done, {tally.failed} failed"
                + (f", {tally.skipped} done before" if tally.skipped else "")
            )
            for error in tally.errors:
                print(f"  failed: {error}")
        if len(tallies) > 1:
            print("compare: parley compare " + " ".join(t.run for t in tallies))
    return 1 if any(t.failed for t in tallies) else 0
