"""`parley up`: start the server and the local workers, wait until healthy, stay up."""

from __future__ import annotations

import argparse
import asyncio
import signal

from parley.commands import admin
from parley.commands.launcher import LocalStack
from parley.commands.models import ensure_models
from parley.config import Config
from parley.errors import ParleyError


async def _up(stack: LocalStack) -> None:
    started = await stack.start()
    for spec in stack.specs:
        state = "started" if spec.name in started else "already running"
        print(f"  {spec.name:14s} {spec.address:22s} {state}")
    address, state = await admin.start_with(stack)
    print(f"  {'admin':14s} {address:22s} {state}")
    print(f"ready; logs in {stack.log_dir}. Ctrl-C stops what was started here.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        for name, process in stack.started.items():
            if process.poll() is not None:
                raise ParleyError(f"{name} exited with code {process.returncode}; see its log")
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            continue


def run_up(args: argparse.Namespace, config: Config) -> int:
    pipelines = args.pipeline or [config.server.default_pipeline]
    for name in pipelines:
        ensure_models(config, name)
    stack = LocalStack(
        config, pipelines, args.config, processes=args.processes, insecure=args.insecure
    )
    try:
        asyncio.run(_up(stack))
    finally:
        stack.stop()
    return 0
