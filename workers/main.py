"""Run one worker process: load an engine, serve its stage over gRPC until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from typing import Any

import grpc

from parley import rpc
from parley.config import WorkersConfig
from parley.security import TokenCheck, beyond_loopback, refuse_open_listen
from parley.telemetry import Telemetry
from workers import engines
from workers.errors import InvalidRequest
from workers.service import servicers

log = logging.getLogger(__name__)


def check_listen(stage: str, address: str, security: WorkersConfig) -> rpc.ServerTls | None:
    """The worker's TLS; refuses (InsecureListenError) to listen beyond loopback with
    neither a token nor mutual TLS unless ``security.insecure``."""
    tls = rpc.ServerTls.configured(security.tls_cert, security.tls_key, security.tls_client_ca)
    refuse_open_listen(
        address,
        f"{stage} worker",
        authenticated=bool(security.token) or (tls is not None and tls.mutual),
        insecure=security.insecure,
        how=(
            "Set a worker token (PARLEY_WORKERS_TOKEN, the same value where the server runs) "
            "and/or mutual TLS ([workers] or the pool's tls_cert, tls_key, tls_client_ca); "
            "see docs/security.md."
        ),
        insecure_how="pass --insecure (or set [workers] insecure = true)",
    )
    if security.token and tls is None and beyond_loopback(address):
        log.warning("the worker token travels unencrypted on %s: set tls_cert and tls_key", address)
    return tls


def describe(security: WorkersConfig) -> str:
    """How callers are checked, for the log: e.g. "token, mutual TLS"."""
    parts = ["token"] if security.token else []
    if security.tls_cert:
        parts.append("mutual TLS" if security.tls_client_ca else "TLS")
    return ", ".join(parts) or "no authentication"


async def serve_engine(
    stage: str,
    name: str,
    engine: engines.Engine,
    address: str,
    telemetry: Telemetry | None = None,
    security: WorkersConfig | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Serve an already loaded engine for ``stage`` on ``address`` (port 0: any); with
    ``telemetry``, each call is a server span joined to the caller's trace.

    ``security`` (default: none, loopback only): a token every call but health checks
    must carry (else UNAUTHENTICATED), TLS and mutual TLS."""
    security = security or WorkersConfig()
    tls = check_listen(stage, address, security)
    try:
        servicer_cls, add_to_server, service_name = servicers()[stage]
    except KeyError:
        raise InvalidRequest(f"no worker service for stage {stage!r}") from None
    servicer = servicer_cls(engine, name)
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if security.token:
        interceptors.append(TokenCheck(security.token))
    if telemetry is not None:
        interceptors.extend(telemetry.server_interceptors())
    server, port, _ = await rpc.start_server(
        address,
        lambda s: add_to_server(servicer, s),
        [service_name],
        interceptors=interceptors,
        tls=tls,
    )
    return server, port


async def start_worker(
    stage: str,
    engine_name: str,
    options: Mapping[str, Any],
    address: str,
    telemetry: Telemetry | None = None,
    security: WorkersConfig | None = None,
) -> tuple[grpc.aio.Server, int, engines.Engine]:
    """Create and load the engine (in a thread), then serve it on ``address``
    (refused before loading anything when ``address`` would be open to the network)."""
    check_listen(stage, address, security or WorkersConfig())
    engine = engines.create_engine(stage, engine_name, options)
    await asyncio.to_thread(engine.load)
    server, port = await serve_engine(stage, engine_name, engine, address, telemetry, security)
    return server, port, engine


async def serve_worker(
    stage: str,
    engine_name: str,
    options: Mapping[str, Any],
    address: str,
    telemetry: Telemetry | None = None,
    security: WorkersConfig | None = None,
) -> None:
    server, port, engine = await start_worker(
        stage, engine_name, options, address, telemetry, security
    )
    security = security or WorkersConfig()
    log.info(
        "%s worker (%s, model %s) listening on port %d (%s)",
        stage,
        engine_name,
        engine.model,
        port,
        describe(security),
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
