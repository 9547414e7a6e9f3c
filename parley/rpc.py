"""gRPC serve/dial helpers shared by the server and the workers.

Every server gets the standard health service (grpc.health.v1), message-size limits
that fit audio and camera frames, and keepalive settings; every channel is dialled
with matching options.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from parley.errors import ConfigError, ParleyError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class ListenError(ParleyError, OSError):
    """A server cannot listen on its address (taken, or not local): one line."""


RECONNECT_MAX_S = 1.0

CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    # A restarted worker is found again within a second (gRPC's default backoff
    # grows to two minutes, during which every call to it fails fast).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Several processes may share a port only when explicitly asked (``reuse_port``); by
    # default a port that is taken is an error, not a silent second listener.
    ("grpc.so_reuseport", 0),
]


@dataclass(frozen=True)
class ServerTls:
    """PEM files: the server's certificate and key, and optionally a CA whose client
    certificates are required (mutual TLS)."""

    cert: str
    key: str
    client_ca: str = ""

    @classmethod
    def configured(cls, cert: str, key: str, client_ca: str = "") -> ServerTls | None:
        """TLS from settings: None when none is set; a client CA needs a certificate."""
        if not (cert or key or client_ca):
            return None
        if not (cert and key):
            raise ConfigError(
                "TLS needs a certificate and its key (a client CA alone cannot be used)"
            )
        return cls(cert, key, client_ca)

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca)

    def credentials(self) -> grpc.ServerCredentials:
        if not (self.cert and self.key):
            raise ConfigError("TLS needs both a certificate and its key")
        pair = (_read(self.key, "TLS key"), _read(self.cert, "TLS certificate"))
        client_ca = _read(self.client_ca, "client CA file") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class ClientTls:
    """Dialling over TLS: a CA to trust (PEM; empty: the system's roots), and a client
    certificate and key (PEM) for servers that require one (mutual TLS).
    ``server_name`` overrides the name checked in the server's certificate."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert) != bool(self.key):
            raise ConfigError("mutual TLS needs both a client certificate and its key")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA file") if self.ca else None,
            private_key=_read(self.key, "client key") if self.key else None,
            certificate_chain=_read(self.cert, "client certificate") if self.cert else None,
        )

    def options(self) -> list[tuple[str, int | str]]:
        extra: list[tuple[str, int | str]] = []
        if self.server_name:
            extra.append(("grpc.ssl_target_name_override", self.server_name))
        return CHANNEL_OPTIONS + extra


async def start_server(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    tls: ServerTls | None = None,
    reuse_port: bool = False,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Start a grpc.aio server on ``address`` (host:port, port 0 = any free port),
    over TLS when ``tls`` is given; a received message above ``max_message_bytes``
    ends its call with RESOURCE_EXHAUSTED. With ``reuse_port`` the port may be shared
    with other processes doing the same (SO_REUSEPORT: the kernel spreads new
    connections across them).

    Returns the server, the bound port and its health servicer; every name in
    ``service_names`` (and the overall "") is marked SERVING once started. Raises
    :class:`ListenError` (one line) when the address cannot be bound.
    """
    replaced = {"grpc.so_reuseport", "grpc.max_receive_message_length"}
    options = [(k, v) for k, v in SERVER_OPTIONS if k not in replaced]
    options.append(("grpc.so_reuseport", int(reuse_port)))
    options.append(("grpc.max_receive_message_length", max_message_bytes))
    server = grpc.aio.server(interceptors=list(interceptors), options=options)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        port = 0
    if port == 0:
        raise ListenError(
            f"cannot listen on {address}: the port is taken (another parley, or another "
            "program) or the address is not this machine's"
        )
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def dial(
    address: str,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    tls: ClientTls | None = None,
) -> grpc.aio.Channel:
    """A channel to ``address``: plain, or over TLS when ``tls`` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(
            address, options=CHANNEL_OPTIONS, interceptors=interceptors
        )
    return grpc.aio.secure_channel(
        address, tls.credentials(), options=tls.options(), interceptors=interceptors
    )


async def check_health(channel: grpc.aio.Channel, service: str = "", timeout: float = 1.0) -> bool:
    """True when the peer answers SERVING within ``timeout`` seconds."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def wait_healthy(address: str, timeout: float, service: str = "") -> None:
    """Poll ``address`` until it reports SERVING; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    async with dial(address) as channel:
        while True:
            if await check_health(channel, service, timeout=min(1.0, timeout)):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{address} did not become healthy within {timeout:.0f} s")
            await asyncio.sleep(0.1)
