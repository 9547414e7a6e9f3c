"""Who may talk to a Parley port: loopback detection, the refusal to listen openly,
random tokens and their digests, and the bearer-token check on worker calls.

Shared by the server (device tokens on the Converse stream), the workers (one token per
pool on every call) and the launcher. Tokens are 256-bit random strings, so a single
SHA-256 is the right digest to store and compare: a slow password hash (scrypt,
argon2) only helps against guessing low-entropy secrets, and would cost every
connection tens of milliseconds for nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from parley import rpc
from parley.config import WorkersConfig
from parley.errors import ConfigError

log = logging.getLogger(__name__)

# A token is sent as ``authorization: Bearer <token>`` call metadata.
AUTH_METADATA = "authorization"
# The standard health service (grpc.health.v1) stays open: it tells only SERVING or not,
# which a TCP connect tells anyway, and lets probes and `parley up` check a worker
# without its secret. It is still behind TLS and mutual TLS when those are on.
OPEN_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/",)


class InsecureListenError(ConfigError):
    """A port would be open to the network with no authentication at all."""


# ---------------------------------------------------------------------------- addresses


def split_host(address: str) -> str:
    """The host part of ``host:port`` / ``[v6]:port`` (brackets removed; "" for ``:port``);
    an address without a port (``::1``, ``localhost``) is its own host."""
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        pass
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]")


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address (127.0.0.0/8,
    ::1). ``0.0.0.0``, ``::`` and an empty host mean every interface: not loopback. A
    name is resolved; one that does not resolve is not loopback."""
    if host in ("", "*"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    found = {str(info[4][0]) for info in infos}
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def beyond_loopback(address: str) -> bool:
    """True when a server bound to ``address`` (host:port) is reachable from other machines."""
    return not is_loopback_host(split_host(address))


def refuse_open_listen(
    address: str,
    what: str,
    *,
    authenticated: bool,
    insecure: bool,
    how: str,
    insecure_how: str,
) -> None:
    """Raise :class:`InsecureListenError` when ``what`` would listen beyond loopback on
    ``address`` with no authentication (``authenticated`` false) and the operator did
    not pass ``insecure``. ``how`` says how to authenticate; ``insecure_how`` how to opt out.
    """
    if authenticated or not beyond_loopback(address):
        return
    if insecure:
        log.warning(
            "%s listens on %s with NO authentication (insecure mode): anyone who can reach "
            "this port can use it",
            what,
            address,
        )
        return
    raise InsecureListenError(
        f"refusing to start the {what} on {address}: that address is reachable from other "
        f"machines and nothing would authenticate them. {how} Or, on a network you trust "
        f"completely, {insecure_how}."
    )


# ---------------------------------------------------------------------------- tokens


def new_token(prefix: str) -> str:
    """A fresh random token: ``prefix`` + 43 URL-safe characters (256 random bits)."""
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 of a token, hex (64 characters): what is stored instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so that lengths leak nothing either)."""
    return hmac.compare_digest(token_digest(given), token_digest(expected))


def bearer(metadata: Sequence[tuple[str, Any]] | None) -> str:
    """The token in ``authorization: Bearer <token>`` call metadata, or ""."""
    for key, value in metadata or ():
        if key == AUTH_METADATA:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every call without the right bearer token with UNAUTHENTICATED, before
    its handler runs (health checks excepted, see :data:`OPEN_METHOD_PREFIXES`)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("TokenCheck needs a token")
        self._token = token

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = str(handler_call_details.method)
        if method.startswith(OPEN_METHOD_PREFIXES):
            return await continuation(handler_call_details)
        given = bearer(handler_call_details.invocation_metadata)  # type: ignore[arg-type]
        handler = await continuation(handler_call_details)
        if handler is None or (given and same_token(given, self._token)):
            return handler
        reason = "wrong worker token" if given else "missing worker token"
        log.warning("refused a call to %s: %s", method, reason)
        return _refusal(handler, reason)


# A refused client-streaming call is read (and dropped) until the client half-closes,
# within these bounds, before the status is sent: a grpc.aio client still writing when
# the status arrives reports "INTERNAL: Internal error from Core" instead of it
# (grpc/grpc#36066). A batch transcription is a few dozen messages.
DRAIN_MESSAGES, DRAIN_S = 256, 2.0


async def _drain(requests: Any) -> None:
    try:
        async with asyncio.timeout(DRAIN_S):
            count = 0
            async for _ in requests:
                count += 1
                if count >= DRAIN_MESSAGES:
                    return
    except (TimeoutError, grpc.aio.AioRpcError):
        return


def _refusal(handler: grpc.RpcMethodHandler, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        if handler.request_streaming:
            await _drain(request)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)


class _SendToken:
    """Adds ``authorization: Bearer <token>`` to a call's metadata."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        metadata.add(AUTH_METADATA, f"Bearer {self._token}")
        return details._replace(metadata=metadata)  # type: ignore[attr-defined,no-any-return]


class _UnaryUnary(_SendToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_SendToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_SendToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_SendToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def send_token(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that send ``token`` on every call of a channel, one per call
    shape (a grpc.aio channel files each interceptor under the first shape it matches)."""
    return [cls(token) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def dial_worker(
    address: str,
    security: WorkersConfig,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel to a worker at ``address`` as its pool's ``security`` says: TLS (and a
    client certificate) when configured, the pool's token on every call."""
    tls = None
    if security.dials_tls:
        tls = rpc.ClientTls(
            security.tls_ca,
            security.tls_client_cert,
            security.tls_client_key,
            security.tls_server_name,
        )
    if security.token:
        interceptors = [*send_token(security.token), *interceptors]
    return rpc.dial(address, interceptors=interceptors, tls=tls)
