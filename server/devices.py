"""Per-device tokens: issue, revoke, list and verify (``parley device ...``, and the
Converse Hello check in :mod:`server.auth`).

A token is 256 random bits shown once when it is made; the store keeps only its
SHA-256 (:func:`parley.security.token_digest`) in ``device_token``, with the device it
belongs to. Functions here are blocking and expect an open store database
(:func:`parley.db.open_database`); the server calls them from a thread.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass

from parley import db
from parley.errors import ParleyError
from parley.security import new_token, token_digest

TOKEN_PREFIX = "pdt_"  # "parley device token": recognisable by secret scanners
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")


class DeviceError(ParleyError):
    """A device command cannot be done (bad name, a token already there, none to revoke)."""


class TokenRefused(Exception):
    """A Hello's token does not admit its device; ``reason`` is safe to send to the edge."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason  # for the server's log only


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def check_name(name: str) -> str:
    if not DEVICE_NAME.fullmatch(name):
        raise DeviceError(
            f"a device name has 1 to 128 letters, digits and . _ @ : - "
            f"(starting with a letter or digit), not {name!r}"
        )
    return name


def _active(name: str) -> db.DeviceToken | None:
    return db.DeviceToken.get_or_none(
        (db.DeviceToken.device == name) & db.DeviceToken.revoked_at.is_null()
    )


def add_device(name: str, *, replace: bool = False) -> str:
    """Issue a token for device ``name`` and return it (the only time it is seen).

    A device has one active token: with an active one already there, ``replace``
    revokes it in the same transaction, else :class:`DeviceError`."""
    check_name(name)
    token = new_token(TOKEN_PREFIX)
    with db.write_transaction():
        current = _active(name)
        if current is not None:
            if not replace:
                made = f"{current.created_at:%Y-%m-%d %H:%M}"
                raise DeviceError(
                    f"device {name!r} already has a token (made {made} UTC): "
                    f"`parley device revoke {name}` first, or "
                    f"`parley device add {name} --replace` to issue a new one"
                )
            current.revoked_at = _now()
            current.save()
        db.DeviceToken.create(
            device=name, digest=token_digest(token), hint=token[: len(TOKEN_PREFIX) + 4]
        )
    return token


def revoke_device(name: str) -> int:
    """Revoke device ``name``'s token; its next Hello is refused. Returns how many
    tokens were revoked; :class:`DeviceError` when it has none."""
    with db.write_transaction():
        revoked = (
            db.DeviceToken.update(revoked_at=_now())
            .where((db.DeviceToken.device == name) & db.DeviceToken.revoked_at.is_null())
            .execute()
        )
    if not revoked:
        raise DeviceError(f"device {name!r} has no active token")
    return int(revoked)


@dataclass(frozen=True)
class DeviceEntry:
    name: str
    hint: str  # the token's first characters
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_seen: dt.datetime | None  # the device's last connection (any token, or none)


def list_devices(*, include_revoked: bool = False) -> list[DeviceEntry]:
    """Every device token, newest first per device (revoked ones with ``include_revoked``)."""
    query = db.DeviceToken.select().order_by(
        db.DeviceToken.device, db.DeviceToken.created_at.desc()
    )
    if not include_revoked:
        query = query.where(db.DeviceToken.revoked_at.is_null())
    rows = list(query)
    seen = {
        d.id: d.last_seen
        for d in db.Device.select().where(db.Device.id.in_([r.device for r in rows]))
    }
    return [
        DeviceEntry(r.device, r.hint, r.created_at, r.revoked_at, seen.get(r.device)) for r in rows
    ]


def any_active() -> bool:
    """True when at least one device has an active token (tokens are then required)."""
    return bool(db.DeviceToken.select().where(db.DeviceToken.revoked_at.is_null()).exists())


def verify(device: str, token: str) -> None:
    """Admit ``token`` for ``device`` or raise :class:`TokenRefused`.

    The device's own tokens are compared in constant time; a token that matches none of
    them is then looked up by digest only to say, in the server's log, whose it is."""
    digest = token_digest(token)
    for row in db.DeviceToken.select().where(db.DeviceToken.device == device):
        if hmac.compare_digest(str(row.digest), digest):
            if row.revoked_at is not None:
                raise TokenRefused(
                    f"revoked token: the token of device {device!r} was revoked",
                    f"revoked token {row.hint}… (revoked {row.revoked_at:%Y-%m-%d %H:%M} UTC)",
                )
            return
    other = db.DeviceToken.get_or_none(db.DeviceToken.digest == digest)
    if other is not None:
        raise TokenRefused(
            f"wrong token: it belongs to another device, not {device!r}",
            f"token {other.hint}… of device {other.device!r} sent as {device!r}",
        )
    raise TokenRefused(f"wrong token: not one this server issued (device {device!r})")
