"""The store's schema: peewee models on a DatabaseProxy (SQLite by default, any URL).

Media (audio, frames) live as files under the data directory; rows hold their paths
relative to it, so a data directory can be moved or mounted elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import peewee
from playhouse.db_url import connect

from parley import migrations

database = peewee.DatabaseProxy()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """JSON stored as text, so it works the same on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Device(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=128)
    first_seen = peewee.DateTimeField(default=_now)
    last_seen = peewee.DateTimeField(default=_now)
    agent_version = peewee.CharField(default="")
    # Exactly-once audio: the device's numbering of its chunks (Hello.audio_epoch) and
    # the first seq of it not yet in a stored turn (see server/delivery.py).
    audio_epoch = peewee.CharField(default="", max_length=64)
    audio_next_seq = peewee.BigIntegerField(default=0)


class Conversation(BaseModel):
    """One Converse stream: a device talking to one pipeline."""

    id = peewee.CharField(primary_key=True, max_length=36)
    device = peewee.ForeignKeyField(Device, backref="conversations", on_delete="CASCADE")
    pipeline = peewee.CharField(index=True)
    started_at = peewee.DateTimeField(default=_now, index=True)
    ended_at = peewee.DateTimeField(null=True)
    # The server process that ran the stream (server/recovery.py): when it dies, the
    # next server start ends its conversations and marks its running turns aborted.
    server_instance = peewee.CharField(default="", max_length=36, index=True)


class Turn(BaseModel):
    """One user utterance and the answer to it. Written when the turn starts, so a turn
    that fails (or a server that dies) still leaves its row, status and error."""

    id = peewee.CharField(primary_key=True, max_length=36)
    conversation = peewee.ForeignKeyField(Conversation, backref="turns", on_delete="CASCADE")
    position = peewee.IntegerField()  # 0, 1, ... within the conversation
    pipeline = peewee.CharField(index=True)
    created_at = peewee.DateTimeField(default=_now, index=True)
    # running | done | failed | interrupted | aborted (the server died during the turn)
    status = peewee.CharField(default="running", index=True)
    transcript = peewee.TextField(default="")
    response = peewee.TextField(default="")
    error = peewee.TextField(default="")
    error_stage = peewee.CharField(default="")
    speech_seconds = peewee.FloatField(default=0.0)
    trace_id = peewee.CharField(default="", index=True)
    latency = JSONField(default=dict)  # the latency record (milliseconds, see server/latency.py)

    class Meta:
        indexes = ((("conversation", "position"), True),)


class Media(BaseModel):
    turn = peewee.ForeignKeyField(Turn, backref="media", on_delete="CASCADE")
    kind = peewee.CharField(index=True)  # "input" | "output" | "frame"
    path = peewee.CharField()  # relative to the data directory
    mime = peewee.CharField(default="audio/wav")
    sample_rate = peewee.IntegerField(default=0)
    seconds = peewee.FloatField(default=0.0)
    bytes = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=_now)


class Span(BaseModel):
    """A finished OpenTelemetry span from any process (edge, server, workers), kept so a
    turn's trace can be read without a collector. Times are Unix epoch nanoseconds."""

    trace_id = peewee.CharField(max_length=32, index=True)
    span_id = peewee.CharField(max_length=16)
    parent_id = peewee.CharField(max_length=16, default="")
    name = peewee.CharField()
    service = peewee.CharField(index=True)  # the resource's service.name
    kind = peewee.CharField(default="")
    start_ns = peewee.BigIntegerField()
    end_ns = peewee.BigIntegerField()
    status = peewee.CharField(default="")  # "", "OK" or "ERROR: description"
    attributes = JSONField(default=dict)
    turn_id = peewee.CharField(default="", index=True)  # the parley.turn.id attribute, if any

    class Meta:
        indexes = ((("trace_id", "span_id"), True),)


MODELS: list[type[BaseModel]] = [Device, Conversation, Turn, Media, Span]


def write_transaction() -> Any:
    """A transaction that takes the write lock up front on SQLite (BEGIN IMMEDIATE), so
    that several processes writing at once wait for each other (busy_timeout) instead
    of failing with "database is locked" when a read turns into a write."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


_opened: dict[str, peewee.Database] = {}
_opening = threading.Lock()


def open_database(url: str) -> peewee.Database:
    """Connect ``database`` to ``url`` (sqlite:///path, postgresql://...) and bring its
    schema up to date (:mod:`parley.migrations`: new tables, pending steps).

    Idempotent: the store and the span exporter of one process share one connection pool.
    """
    with _opening:
        if url in _opened and database.obj is _opened[url]:
            return _opened[url]
        return _open(url)


def _open(url: str) -> peewee.Database:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = connect(url, pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000})
    else:
        db = connect(url)
    database.initialize(db)
    migrations.upgrade(db, MODELS, migrations.STORE_MIGRATIONS)
    _opened[url] = db
    return db
