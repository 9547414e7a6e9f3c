"""Who may open a Converse stream: the listen policy checked at start-up and the
device check on every Hello.

At start-up (:meth:`DeviceGate.open`) a server bound beyond loopback refuses to run
unless edges must authenticate: mutual TLS, at least one device token (``parley device
add``), or the deprecated shared ``[server] token``; ``--insecure`` /
``[server] insecure = true`` overrides that on a trusted network.

Per Hello (:meth:`DeviceGate.admit`), a token that is sent is always checked: a device
token must be the Hello's device's own and not revoked; the shared token admits any
device. Without a token, a Hello is admitted only when no token is required: tokens are
required once any device has one, whenever the server listens beyond loopback (unless
``insecure``), and always with ``require_token``; a client certificate (mutual TLS)
stands in for a token unless ``require_token`` is set. So a fresh install on loopback
(`parley up`, `scripts/demo`) needs no set-up, and issuing the first token closes the door.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

import grpc

from parley.config import ServerConfig
from parley.rpc import ServerTls
from parley.security import beyond_loopback, refuse_open_listen, same_token
from protos import edge_pb2
from server import devices
from server.devices import TokenRefused
from server.store import TurnStore

log = logging.getLogger(__name__)
T = TypeVar("T")

NEEDS_TOKEN = (
    "missing token: this server needs a device token: create one on the server with "
    "`parley device add {device}` and give it to the edge as PARLEY_EDGE_TOKEN"
)


@dataclass(frozen=True)
class Identity:
    """Who opened a stream: the Hello's device, how it proved it, and its network peer."""

    device: str
    method: str  # "device token" | "shared token" | "mTLS CN=<name>" | "none", "+"-joined
    peer: str


def certificate_name(context: grpc.aio.ServicerContext) -> str:
    """The common name of the client certificate the TLS layer verified ("" if none)."""
    names = context.auth_context().get("x509_common_name") or []
    return next((bytes(n).decode("utf-8", "replace") for n in names), "")


class DeviceGate:
    def __init__(
        self,
        config: ServerConfig,
        store: TurnStore,
        *,
        beyond_loopback: bool = False,
        mutual_tls: bool = False,
    ) -> None:
        self.config = config
        self.store = store  # token lookups run on its thread, like every store query
        self.beyond_loopback = beyond_loopback
        self.mutual_tls = mutual_tls

    @classmethod
    async def open(
        cls, config: ServerConfig, store: TurnStore, address: str, tls: ServerTls | None
    ) -> DeviceGate:
        """The gate for a server about to listen on ``address`` (the store is open).

        Raises :class:`parley.security.InsecureListenError` when that would let anyone
        on the network in."""
        gate = cls(
            config,
            store,
            beyond_loopback=beyond_loopback(address),
            mutual_tls=tls is not None and tls.mutual,
        )
        has_tokens = await store.query(devices.any_active)
        if config.token:
            log.warning(
                "[server] token (one secret shared by every device) is deprecated: it still "
                "admits any device that sends it; give each device its own token with "
                "`parley device add NAME` and then remove it"
            )
        refuse_open_listen(
            address,
            "Parley server",
            authenticated=gate.mutual_tls or has_tokens or bool(config.token),
            insecure=config.insecure,
            how=(
                "Give each edge a token (`parley device add NAME` here, then "
                "PARLEY_EDGE_TOKEN=<token> on the edge), or require client certificates "
                "([server] tls_cert, tls_key and tls_client_ca: mutual TLS); see docs/security.md."
            ),
            insecure_how=(
                "pass --insecure (or set [server] insecure = true / PARLEY_SERVER_INSECURE=1)"
            ),
        )
        if gate.beyond_loopback and not config.tls_cert:
            log.warning(
                "tokens and audio travel unencrypted on %s: set [server] tls_cert and tls_key",
                address,
            )
        return gate

    async def _token_required(self, certified: bool) -> bool:
        if self.config.require_token:
            return True
        if certified:
            return False
        if self.config.token or (self.beyond_loopback and not self.config.insecure):
            return True
        return await self.store.query(devices.any_active)

    async def admit(self, hello: edge_pb2.Hello, context: grpc.aio.ServicerContext) -> Identity:
        """The identity behind ``hello``, or :class:`TokenRefused` (sent to the edge as
        UNAUTHENTICATED; the reason names what to do, never a secret)."""
        peer = context.peer() or ""
        cn = certificate_name(context)
        methods = []
        try:
            if hello.token:
                if self.config.token and same_token(hello.token, self.config.token):
                    methods.append("shared token")
                else:
                    await self.store.query(devices.verify, hello.device_id, hello.token)
                    methods.append("device token")
            elif await self._token_required(bool(cn)):
                raise TokenRefused(NEEDS_TOKEN.format(device=hello.device_id or "NAME"))
        except TokenRefused as exc:
            log.warning("refused device %r from %s: %s", hello.device_id, peer, exc.detail)
            raise
        if cn:
            methods.append(f"mTLS CN={cn}")
        return Identity(hello.device_id, " + ".join(methods) or "none", peer)
