"""`parley server`: the Converse server, as one process or as N supervised processes
sharing the port (``--processes``, default ``[server] processes``: one per CPU core)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from parley.config import Config
from parley.config_values import join_address, parse_address
from parley.errors import ConfigError

CHILD_LOG_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"


def _listen(config: Config, listen: str | None) -> Config:
    """``config`` with ``--listen HOST:PORT`` applied."""
    if not listen:
        return config
    host, port = parse_address(listen, "--listen", any_port=True, empty_host=True)
    server = dataclasses.replace(config.server, host=host or config.server.host, port=port)
    return dataclasses.replace(config, server=server)


def process_count(requested: int | None, config: Config) -> int:
    from server.processes import default_processes

    count = requested if requested is not None else config.server.processes
    if count < 0:
        raise ConfigError(
            f"the number of server processes must be 0 (one per core) or more, not {count}"
        )
    return count or default_processes()


def run_server(args: argparse.Namespace, config: Config) -> int:
    from parley import db

    db.require_driver(config.database_url)  # once, before any process starts
    config = _listen(config, args.listen)
    if args.insecure:
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, insecure=True)
        )
    if args.ready_fd is not None:  # one of a supervisor's processes
        return _serve_one(config, reuse_port=True, ready_fd=args.ready_fd)
    processes = process_count(args.processes, config)
    if processes == 1:
        return _serve_one(config, reuse_port=args.reuse_port)
    from server.smart_turn import check_models

    check_models(config)  # a missing or wrong end-of-turn model: one error, no process started
    return _supervise(args, config, processes)


def _serve_one(config: Config, *, reuse_port: bool, ready_fd: int | None = None) -> int:
    from server.app import serve
    from server.processes import notify_ready

    if ready_fd is not None:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(CHILD_LOG_FORMAT))
    asyncio.run(
        serve(
            config,
            reuse_port=reuse_port,
            on_ready=None if ready_fd is None else lambda _port: notify_ready(ready_fd),
        )
    )
    return 0


def _supervise(args: argparse.Namespace, config: Config, processes: int) -> int:
    from server.processes import Supervisor, free_port

    host, port = config.server.host, config.server.port or free_port(config.server.host)
    command = [sys.executable, "-m", "parley"]
    if args.config:
        command += ["--config", args.config]
    if args.verbose:
        command.append("--verbose")
    command += ["server", "--listen", join_address(host, port)]
    if config.server.insecure:
        command.append("--insecure")
    logging.getLogger(__name__).info(
        "starting %d server processes on %s:%d (SO_REUSEPORT)", processes, host, port
    )
    return Supervisor(command, processes).run()
