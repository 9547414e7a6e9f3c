"""`parley db status` / `parley db upgrade`: the store's schema, for operators.

Every process that opens the store upgrades it (under a lock, see parley/migrations.py),
so `upgrade` is never required; it lets an operator upgrade once, on purpose, before
restarting servers on several hosts, and `status` shows what a database has.
`parley doctor` only reads it (:func:`read_store`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import peewee

from parley import db, migrations
from parley.config import Config
from parley.errors import ParleyError


@dataclass(frozen=True)
class SchemaStatus:
    database: str  # the URL, password hidden
    exists: bool
    applied: list[str]  # every recorded step, oldest first
    pending: list[str]  # steps of this release not yet applied


def _steps() -> list[tuple[list[type[peewee.Model]], list[migrations.Migration]]]:
    """(models, steps) of the store and the admin, in upgrade order."""
    from admin.models import ADMIN_MIGRATIONS, ADMIN_MODELS

    return [
        (list(db.MODELS), list(migrations.STORE_MIGRATIONS)),
        (list(ADMIN_MODELS), list(ADMIN_MIGRATIONS)),
    ]


def _connect(url: str) -> peewee.Database:
    try:
        database = db.connect_database(url)
        database.connect()
    except db.MissingDriver:
        raise  # its message says what to install
    except (ValueError, peewee.OperationalError, peewee.DatabaseError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParleyError(f"cannot open the database {db.redact(url)}: {first_line}") from None
    return database


def schema_status(url: str) -> SchemaStatus:
    """What ``url``'s database has applied and what this release would apply."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        pending = [m.name for _, steps in _steps() for m in steps]
        return SchemaStatus(db.redact(url), False, [], pending)
    database = _connect(url)
    try:
        applied = migrations.applied(database)
        pending = [m.name for _, steps in _steps() for m in steps if m.name not in applied]
    finally:
        database.close()
    return SchemaStatus(db.redact(url), True, applied, pending)


@dataclass(frozen=True)
class StoreReading:
    status: SchemaStatus
    turns: int = 0  # counted only when the schema is up to date
    accounts: int = 0  # active admin accounts, likewise


def read_store(url: str) -> StoreReading:
    """``url``'s schema status and, when it is up to date, how many turns and active
    admin accounts it holds. Reads only: nothing is created or upgraded (`parley doctor`).
    ParleyError (MissingDriver for a missing driver) when it cannot be opened."""
    status = schema_status(url)
    if not status.exists or status.pending:
        return StoreReading(status)
    from admin.models import User

    database = _connect(url)
    try:
        with database.bind_ctx([db.Turn, User]):
            turns = db.Turn.select().count()
            accounts = User.select().where(User.active == True).count()  # noqa: E712
    finally:
        database.close()
    return StoreReading(status, turns, accounts)


def upgrade(url: str) -> list[str]:
    """Create missing tables and run pending steps (store, then admin); the steps run."""
    database = _connect(url)
    database.close()
    db.database.initialize(database)
    ran = []
    for models, steps in _steps():
        ran += migrations.upgrade(database, models, steps)
    database.close()
    return ran


def run_db(args: argparse.Namespace, config: Config) -> int:
    url = config.database_url
    if args.db_command == "upgrade":
        ran = upgrade(url)
        print(
            f"{db.redact(url)}: " + (f"applied {', '.join(ran)}" if ran else "already up to date")
        )
        return 0
    status = schema_status(url)
    if args.json:
        print(json.dumps(asdict(status), indent=2))
        return 0
    print(f"database  {status.database}" + ("" if status.exists else " (not created yet)"))
    print(
        f"applied   {len(status.applied)} step(s)"
        + (f": {status.applied[-1]} last" if status.applied else "")
    )
    if status.pending:
        print(f"pending   {', '.join(status.pending)}")
        print("          (applied by `parley db upgrade`, or by the next server/admin start)")
    else:
        print("pending   none: up to date")
    return 0
