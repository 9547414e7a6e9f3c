"""Dialling the server from the edge: plain on a trusted network, TLS with a CA file,
or mutual TLS with a client certificate and key.

Channels get the shared options of :mod:`parley.rpc` (message sizes, keepalive).
"""

from __future__ import annotations

import grpc

from parley import rpc


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
    return rpc.dial(address, tls=rpc.ClientTls(ca, cert, key, server_name) if tls else None)
