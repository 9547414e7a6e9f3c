"""Schema migrations: named steps applied once each, in order, with peewee's
``playhouse.migrate`` (SQLite and PostgreSQL alike).

How a database reaches the current schema (:func:`upgrade`, run by
:func:`parley.db.open_database` and by ``parley db upgrade``):

1. tables that do not exist yet are created from the current models, with their
   indexes (a new database gets the whole current schema at once); existing tables
   are not touched here;
2. every registered step not yet recorded in ``schema_migration`` runs, and is
   recorded. Steps are written to be idempotent against the current models (they add
   a column only where it is missing, fill values only where they are unset), so on a
   new database they are no-ops and on an old one they bring the tables up to date.

Everything runs in one transaction that holds the write lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL), so several processes opening the same
database at once (``parley server --processes N``, workers' span exporters, the
admin) upgrade it exactly once.

Adding a step: append a :class:`Migration` to :data:`STORE_MIGRATIONS` (or the
admin's list in ``admin/models.py``) with a new, descriptive name; never rename or
remove a released step. Names are recorded, not numbers, so steps added on parallel
branches merge without renumbering.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import peewee
from playhouse.migrate import SchemaMigrator, migrate

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "parley" in ASCII, so it is recognisable in pg_locks.
_PG_LOCK_KEY = 0x7061726C6579


class SchemaMigration(peewee.Model):
    """One applied step (``name``) and when it ran (UTC)."""

    name = peewee.CharField(primary_key=True, max_length=200)
    applied_at = peewee.DateTimeField()

    class Meta:
        table_name = "schema_migration"


class Schema:
    """What a step is given: the database and idempotent schema operations."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        self.migrator = SchemaMigrator.from_database(database)

    def columns(self, table: str) -> set[str]:
        return {column.name for column in self.database.get_columns(table)}

    def add_columns(self, model: type[peewee.Model], *names: str) -> list[str]:
        """Add ``model``'s fields ``names`` to its table where missing; returns those added.

        A field that is not nullable needs a default (peewee fills existing rows with it).
        """
        table = model._meta.table_name
        present = self.columns(table)
        added = []
        for name in names:
            field = model._meta.fields[name]
            if field.column_name not in present:
                migrate(self.migrator.add_column(table, field.column_name, field))
                added.append(field.column_name)
        return added

    def add_index(self, model: type[peewee.Model], columns: Sequence[str], unique: bool) -> None:
        """An index on ``columns`` of ``model``'s table, if no index of that name exists."""
        table = model._meta.table_name
        name = f"{table}_{'_'.join(columns)}"
        if name not in {index.name for index in self.database.get_indexes(table)}:
            migrate(self.migrator.add_index(table, list(columns), unique))


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Schema], None]


def _baseline(schema: Schema) -> None:
    """The schema as first released: created from the models by step 1."""


def _conversation_auth(schema: Schema) -> None:
    """How each conversation's device authenticated, and from where (issue 9). The
    ``device_token`` table is new, so step 1 creates it."""
    from parley import db

    schema.add_columns(db.Conversation, "auth", "peer")


def _turn_spoken(schema: Schema) -> None:
    """Turns keep the LLM's reasoning apart from its response, and the sentences sent
    to the TTS (issue 8)."""
    from parley import db  # the models import this module

    schema.add_columns(db.Turn, "reasoning", "spoken")


def _datasets_and_runs(schema: Schema) -> None:
    """Issue 12's tables (dataset, dataset_item, run, run_item) are new: step 1 creates
    them, with their indexes, on a database that lacks them. Recorded so a database says
    it has them."""


def _turn_outputs(schema: Schema) -> None:
    """Turn.outputs: per-stage outputs (the VAD's speech bounds, later stages' labels)."""
    from parley.db import Turn

    schema.add_columns(Turn, "outputs")


def _i9_delivery_and_recovery(schema: Schema) -> None:
    """Exactly-once audio (the device's acknowledged seq) and crash recovery (which
    server process ran a conversation)."""
    from parley import db

    schema.add_columns(db.Device, "audio_epoch", "audio_next_seq")
    schema.add_columns(db.Conversation, "server_instance")
    schema.add_index(db.Conversation, ["server_instance"], unique=False)


STORE_MIGRATIONS: list[Migration] = [
    Migration("0001-baseline", _baseline),
    Migration("i9sec-conversation-auth", _conversation_auth),
    Migration("i8-turn-spoken", _turn_spoken),
    Migration("i12-datasets-runs", _datasets_and_runs),
    Migration("i13-turn-outputs", _turn_outputs),
    Migration("i9-delivery-and-recovery", _i9_delivery_and_recovery),
]


def applied(database: peewee.Database) -> list[str]:
    """Names of the steps recorded in ``database`` (oldest first)."""
    with SchemaMigration.bind_ctx(database):
        if not database.table_exists(SchemaMigration._meta.table_name):
            return []
        query = SchemaMigration.select().order_by(SchemaMigration.applied_at)
        return [row.name for row in query]


def pending(database: peewee.Database, migrations: Sequence[Migration]) -> list[str]:
    done = set(applied(database))
    return [m.name for m in migrations if m.name not in done]


class MigrationError(Exception):
    """A step would leave the database inconsistent (the upgrade was rolled back)."""


@contextlib.contextmanager
def _foreign_keys_off(database: peewee.Database) -> Iterator[None]:
    """SQLite rebuilds a table to change a column (playhouse copies it, drops the old one
    and renames the copy); with foreign keys enforced, dropping ``conversation`` would
    cascade-delete every turn. So, as SQLite's ALTER TABLE guide says, enforcement is
    off during the upgrade and the keys are checked before it commits. The pragma is a
    no-op inside a transaction, so this wraps the whole transaction."""
    if not isinstance(database, peewee.SqliteDatabase):
        yield
        return
    (enforced,) = database.execute_sql("PRAGMA foreign_keys").fetchone()
    database.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        database.execute_sql(f"PRAGMA foreign_keys = {int(enforced)}")


def _check_foreign_keys(database: peewee.Database) -> None:
    if isinstance(database, peewee.SqliteDatabase):
        broken = database.execute_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise MigrationError(f"the upgrade would break foreign keys: {broken[:5]}")


def _lock(database: peewee.Database) -> object:
    if isinstance(database, peewee.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def upgrade(
    database: peewee.Database,
    models: Iterable[type[peewee.Model]],
    migrations: Sequence[Migration],
) -> list[str]:
    """Create missing tables of ``models``, then run the steps not yet applied.

    Returns the names of the steps that ran. A step that fails rolls the whole upgrade
    back and raises (the database is left as it was); :class:`MigrationError` when the
    result would break a foreign key.
    """
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")
    with (
        database.connection_context(),
        _foreign_keys_off(database),
        _lock(database),  # type: ignore[attr-defined]
    ):
        if isinstance(database, peewee.PostgresqlDatabase):
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
        models = list(models)
        with database.bind_ctx([SchemaMigration, *models]):
            new = [m for m in models if not database.table_exists(m._meta.table_name)]
            # Existing tables are left to the steps: their indexes may name columns
            # that a step has yet to add.
            database.create_tables([SchemaMigration, *new], safe=True)
            done = {row.name for row in SchemaMigration.select(SchemaMigration.name)}
            ran = []
            schema = Schema(database)
            for step in migrations:
                if step.name in done:
                    continue
                step.apply(schema)
                SchemaMigration.create(
                    name=step.name, applied_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)
                )
                ran.append(step.name)
            _check_foreign_keys(database)
    if ran:
        log.info("database upgraded: %s", ", ".join(ran))
    return ran
