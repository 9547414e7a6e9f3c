"""`parley device add|revoke|list`: per-device tokens, on the server's store.

Run where the server's database is (same config and $PARLEY_HOME). A running server
sees a new or revoked token at the device's next Hello; no restart is needed.
"""

from __future__ import annotations

import argparse
import json

from parley import db
from parley.config import Config


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


def run_device(args: argparse.Namespace, config: Config) -> int:
    from server import devices

    db.open_database(config.database_url)
    with db.database.connection_context():
        if args.device_command == "add":
            token = devices.add_device(args.name, replace=args.replace)
            print(
                f"device {args.name}: new token (shown only now; the store keeps its hash).\n"
                f"Give it to the edge, e.g. in /etc/parley/edge.env (mode 600):\n\n"
                f"PARLEY_EDGE_TOKEN={token}\n\n"
                f"The edge must send device_id {args.name!r} ([edge] device_id, or "
                f"--device-id {args.name})."
            )
        elif args.device_command == "revoke":
            devices.revoke_device(args.name)
            print(f"device {args.name}: token revoked; its next connection is refused")
        else:
            entries = devices.list_devices(include_revoked=args.all)
            if args.json:
                rows = [
                    {
                        "device": e.name,
                        "token": e.hint + "…",
                        "created_at": e.created_at.isoformat(),
                        "revoked_at": e.revoked_at.isoformat() if e.revoked_at else None,
                        "last_seen": e.last_seen.isoformat() if e.last_seen else None,
                    }
                    for e in entries
                ]
                print(json.dumps(rows, indent=2))
            elif not entries:
                print(
                    "no device tokens: a server on loopback admits any edge; one listening "
                    "beyond loopback refuses to start without them (see docs/security.md)"
                )
            else:
                print(f"{'device':24s} {'token':10s} {'made (UTC)':17s} {'last seen':17s} revoked")
                for e in entries:
                    print(
                        f"{e.name:24s} {e.hint + '…':10s} {_when(e.created_at):17s} "
                        f"{_when(e.last_seen):17s} {_when(e.revoked_at)}"
                    )
    return 0
