"""Build and run the Parley server: store, VAD model, worker pools, Converse service."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from parley import db, rpc
from parley.config import Config
from parley.config_values import join_address
from parley.telemetry import Telemetry, setup_telemetry
from server import smart_turn, wire
from server.auth import DeviceGate
from server.edge_service import EdgeServicer
from server.smart_turn import ClipScorer
from server.store import TurnStore
from server.vad import SileroVad
from server.vad_scheduler import BatchScheduler
from server.worker_clients import WorkerPool

log = logging.getLogger(__name__)

SERVICE_NAME = wire.SERVICE_NAME


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    servicer: EdgeServicer
    vad: BatchScheduler[SileroVad]
    store: TurnStore
    pools: dict[str, WorkerPool]
    telemetry: Telemetry
    end_of_turn: dict[Path, BatchScheduler[ClipScorer]] = field(default_factory=dict)

    async def stop(self, grace: float | None = 2.0) -> None:
        await self.server.stop(grace)
        await self.servicer.services.wait_closed(timeout=10.0)  # their last store writes
        await self.vad.aclose()
        for scheduler in self.end_of_turn.values():
            await scheduler.aclose()
        for pool in self.pools.values():
            await pool.close()
        await self.store.close()
        self.telemetry.shutdown()


async def start_server(
    config: Config,
    address: str | None = None,
    telemetry: Telemetry | None = None,
    *,
    reuse_port: bool = False,
) -> RunningServer:
    """Open the store, check who may connect (server/auth.py: refuses to listen beyond
    loopback with no authentication), load the VAD and listen (``address`` overrides
    the config; with ``reuse_port`` other server processes may listen on the same port).

    ``telemetry`` defaults to tracing into the store's database (and OTLP if the
    OTEL_* variables ask for it)."""
    address = address or join_address(config.server.host, config.server.port)
    tls = rpc.ServerTls.configured(
        config.server.tls_cert, config.server.tls_key, config.server.tls_client_ca
    )
    store = TurnStore(
        config.database_url, config.data_dir, write_retry_s=config.store.write_retry_s
    )
    await store.open()
    try:
        gate = await DeviceGate.open(config.server, store, address, tls)  # may refuse to listen
    except BaseException:
        await store.close()
        raise
    try:  # the end-of-turn model of pipelines with strategy smart_turn: fail before listening
        end_of_turn = smart_turn.start_schedulers(config)
    except BaseException:
        await store.close()
        raise
    if telemetry is None:
        telemetry = setup_telemetry("parley-server", database_url=config.database_url)
    vad = BatchScheduler(
        SileroVad(config.vad.model_path or None),
        interval_s=config.vad.batch_interval_ms / 1000,
        max_interval_s=config.vad.batch_max_interval_ms / 1000,
        max_batch=config.vad.batch_max,
    )
    interceptors = telemetry.client_interceptors()
    pools = {name: WorkerPool(pool, interceptors) for name, pool in config.pools.items()}
    servicer = EdgeServicer(config, store, vad, pools, telemetry, gate=gate)
    servicer.services.end_of_turn = end_of_turn
    server, port, _ = await rpc.start_server(
        address,
        lambda s: wire.add_edge_servicer(servicer, s),
        [SERVICE_NAME],
        tls=tls,
        reuse_port=reuse_port,
        max_message_bytes=config.limits.max_message_bytes,
    )
    vad.start()  # a server-lifetime task and thread (not the first session's)
    log.info(
        "parley server listening on %s (port %d), store %s",
        address,
        port,
        db.redact(config.database_url),
    )
    return RunningServer(server, port, servicer, vad, store, pools, telemetry, end_of_turn)


async def serve(
    config: Config, *, reuse_port: bool = False, on_ready: Callable[[int], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready(port)`` once listening."""
    running = await start_server(config, reuse_port=reuse_port)
    if on_ready is not None:
        on_ready(running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("parley server stopping")
    await running.stop()
