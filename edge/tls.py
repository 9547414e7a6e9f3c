"""Dialling the server from the edge: plain on a trusted network, TLS with a CA file,
or mutual TLS with a client certificate and key.

Channels get the shared options of :mod:`parley.rpc` (message sizes, keepalive).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from parley import rpc
from parley.errors import ConfigError


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None


def channel_credentials(ca: str, cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """TLS credentials trusting the CA in ``ca`` (PEM; empty: the system's roots),
    presenting ``cert``/``key`` (PEM) to servers that ask for client certificates."""
    if bool(cert) != bool(key):
        raise ConfigError("mutual TLS needs both a client certificate and its key")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA file") if ca else None,
        private_key=_read(key, "client key") if key else None,
        certificate_chain=_read(cert, "client certificate") if cert else None,
    )


def secure_dial(
    address: str,
    *,
    ca: str = "",
    cert: str = "",
    key: str = "",
    server_name: str = "",
    tls: bool | None = None,
) -> grpc.aio.Channel:
    """A channel to ``address``: TLS when ``tls`` is true (default: when any of ``ca``,
    ``cert`` or ``key`` is set), plain otherwise. ``server_name`` overrides the name
    checked against the server's certificate (e.g. when dialling by IP address)."""
    if tls is None:
        tls = bool(ca or cert or key)
    if not tls:
        return rpc.dial(address)
    options = list(rpc.CHANNEL_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(address, channel_credentials(ca, cert, key), options=options)
