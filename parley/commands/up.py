"""`parley up`: start the server and the local workers, wait until healthy, stay up.

It prints what runs where (the admin site as a clickable http:// address), says when the
admin has no accounts yet and how to make one, and says when it stopped and why.
"""

from __future__ import annotations

import argparse
import asyncio

from parley.commands import admin
from parley.commands.launcher import LocalStack
from parley.commands.models import ensure_models
from parley.config import Config
from parley.config_values import join_address
from parley.errors import ParleyError


def _accounts_note(config: Config) -> str:
    count = admin.account_count(config)
    if count == 0:
        return (
            "  no admin accounts yet: nobody can log in. Create one:\n"
            "    parley admin create-user NAME --role admin"
        )
    return ""


async def _up(stack: LocalStack) -> None:
    started = await stack.start()
    config = stack.config
    for spec in stack.specs:
        state = "started" if spec.name in started else "already running"
        print(f"  {spec.name:14s} grpc {spec.address:22s} {state}")
    _, state = await admin.start_with(stack)
    url = admin.site_url(config.admin.host, config.admin.port)
    print(f"  {'admin':14s} {url:27s} {state}")
    note = "" if state.startswith("not started") else _accounts_note(config)
    if note:
        print(note)
    server = join_address(config.server.host, config.server.port)
    print(
        f"ready: open {url} ; the edge connects to {server} "
        f"(parley edge --server ...). Logs in {stack.log_dir}. Ctrl-C stops what was "
        "started here.",
        flush=True,
    )
    while True:  # until Ctrl-C or SIGTERM (LocalStack takes both as an interrupt)
        for name, process in stack.started.items():
            if process.poll() is not None:
                raise ParleyError(
                    f"{name} exited with code {process.returncode} (its log: "
                    f"{stack.log_dir / (name + '.log')}); stopped the rest"
                )
        await asyncio.sleep(1.0)


def run_up(args: argparse.Namespace, config: Config) -> int:
    pipelines = args.pipeline or [config.server.default_pipeline]
    for name in pipelines:
        ensure_models(config, name)
    stack = LocalStack(
        config, pipelines, args.config, processes=args.processes, insecure=args.insecure
    )
    try:
        asyncio.run(_up(stack))
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the way `parley up` is meant to stop
    finally:
        names = list(stack.started)
        stack.stop()
        if names:
            print(f"stopped {', '.join(names)}", flush=True)
        else:
            print("stopped (nothing had been started here)", flush=True)
    return 0
