"""Run one worker process: load an engine, serve its stage over gRPC until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from typing import Any

import grpc

from parley import rpc
from parley.telemetry import Telemetry
from workers import engines
from workers.service import SERVICERS

log = logging.getLogger(__name__)


async def serve_engine(
    stage: str,
    name: str,
    engine: engines.Engine,
    address: str,
    telemetry: Telemetry | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Serve an already loaded engine for ``stage`` on ``address`` (port 0: any); with
    ``telemetry``, each call is a server span joined to the caller's trace."""
    servicer_cls, add_to_server, service_name = SERVICERS[stage]
    servicer = servicer_cls(engine, name)
    server, port, _ = await rpc.start_server(
        address,
        lambda s: add_to_server(servicer, s),
        [service_name],
        interceptors=telemetry.server_interceptors() if telemetry else (),
    )
    return server, port


async def start_worker(
    stage: str,
    engine_name: str,
    options: Mapping[str, Any],
    address: str,
    telemetry: Telemetry | None = None,
) -> tuple[grpc.aio.Server, int, engines.Engine]:
    """Create and load the engine (in a thread), then serve it on ``address``."""
    engine = engines.create_engine(stage, engine_name, options)
    await asyncio.to_thread(engine.load)
    server, port = await serve_engine(stage, engine_name, engine, address, telemetry)
    return server, port, engine


async def serve_worker(
    stage: str,
    engine_name: str,
    options: Mapping[str, Any],
    address: str,
    telemetry: Telemetry | None = None,
) -> None:
    server, port, engine = await start_worker(stage, engine_name, options, address, telemetry)
    log.info(
        "%s worker (%s, model %s) listening on port %d", stage, engine_name, engine.model, port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s worker stopping", stage)
    await server.stop(grace=2.0)
    engine.close()
    if telemetry is not None:
        telemetry.shutdown()
