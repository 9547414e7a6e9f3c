"""The store's schema: peewee models on a DatabaseProxy (SQLite by default, any URL).

Media (audio, frames) live as files under the data directory; rows hold their paths
relative to it, so a data directory can be moved or mounted elsewhere.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee
from playhouse.db_url import connect, register_database
from playhouse.pool import PooledPostgresqlDatabase as PooledPostgresqlBase

from parley import migrations
from parley.errors import ParleyError

database = peewee.DatabaseProxy()
POSTGRES_EXTRA = "PostgreSQL needs the postgres extra: pip install 'parley[postgres]'"


class MissingDriver(ParleyError, ValueError):
    """The database URL needs a driver that is not installed (the message names the extra)."""


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
    # How the device proved who it is: "device token", "shared token" (deprecated),
    # "mTLS CN=<name>", or "none" (an open loopback or --insecure server).
    auth = peewee.CharField(max_length=160, default="")
    peer = peewee.CharField(max_length=128, default="")  # gRPC peer, e.g. ipv4:10.0.0.7:51234
    # The server process that ran the stream (server/recovery.py): when it dies, the
    # next server start ends its conversations and marks its running turns aborted.
    server_instance = peewee.CharField(default="", max_length=36, index=True)


class Turn(BaseModel):
    """One user utterance and the answer to it. Written when the turn starts, so a turn
    that fails (or a server that dies) still leaves its row, status and error."""

    id = peewee.CharField(primary_key=True, max_length=36)
    conversation_id: str  # the foreign key's raw value (peewee adds it; declared for mypy)
    conversation = peewee.ForeignKeyField(Conversation, backref="turns", on_delete="CASCADE")
    position = peewee.IntegerField()  # 0, 1, ... within the conversation
    pipeline = peewee.CharField(index=True)
    created_at = peewee.DateTimeField(default=_now, index=True)
    # running | done | failed | interrupted | no_speech (a transcript without words) |
    # aborted (the server died during the turn)
    status = peewee.CharField(default="running", index=True)
    transcript = peewee.TextField(default="")
    response = peewee.TextField(default="")  # the LLM's text, without reasoning blocks
    reasoning = peewee.TextField(default="")  # the LLM's <think> blocks, if any
    spoken = JSONField(default=list)  # the sentences sent to the TTS, in order
    error = peewee.TextField(default="")
    error_stage = peewee.CharField(default="")
    speech_seconds = peewee.FloatField(default=0.0)
    trace_id = peewee.CharField(default="", index=True)
    latency = JSONField(default=dict)  # the latency record (milliseconds, see server/latency.py)
    # What each stage reported besides the transcript and the response, by stage name:
    # {"vad": {"speech_start_s": 0.2, "speech_end_s": 2.4}} (seconds into the turn's
    # input audio) and each context stage of the pipeline (server/context_stages.py):
    # {"emotion": {"kind": "analyse", "status": "done", "error": "", "label": "happy",
    # "score": 0.81, "labels": [...], "input": "audio"}}; docs/architecture.md has every
    # kind's shape. Annotation questions can be bound to a value here by its dotted path.
    outputs = JSONField(default=dict)

    class Meta:
        indexes = ((("conversation", "position"), True),)


class Media(BaseModel):
    turn_id: str  # the foreign key's raw value (peewee adds it; declared for mypy)
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


class DeviceToken(BaseModel):
    """A device's credential (``parley device add``): the SHA-256 of a random token.
    The token itself is shown once and never stored; revoking keeps the row."""

    device = peewee.CharField(max_length=128, index=True)  # the Hello's device_id
    digest = peewee.CharField(max_length=64, unique=True)  # parley.security.token_digest
    hint = peewee.CharField(max_length=16)  # the token's first characters, for listings
    created_at = peewee.DateTimeField(default=_now)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "device_token"


class Dataset(BaseModel):
    """One version of a named set of recordings to replay through pipelines (research/).

    A name's versions are separate rows (1, 2, ...); items never change once written, so
    a run's results always refer to exactly the recordings and references it was given."""

    id = peewee.AutoField()
    name = peewee.CharField(max_length=100)
    version = peewee.IntegerField(default=1)
    description = peewee.TextField(default="")
    source = peewee.TextField(default="")  # where the items came from, in words
    created_at = peewee.DateTimeField(default=_now)

    class Meta:
        indexes = ((("name", "version"), True),)


class DatasetItem(BaseModel):
    """One recording of a dataset: input audio (a PCM16 WAV in the recording's own rate
    and channels, under the data directory like turn media), what it should be heard as
    and answered with, and its place in a multi-turn conversation if it has one."""

    id = peewee.AutoField()
    dataset_id: int  # the foreign key's raw value (peewee adds it; declared for mypy)
    dataset = peewee.ForeignKeyField(Dataset, backref="items", on_delete="CASCADE")
    position = peewee.IntegerField()  # 0, 1, ... within the dataset
    key = peewee.CharField(max_length=255)  # the item's name: a file path without extension
    audio_path = peewee.CharField()  # relative to the data directory
    sample_rate = peewee.IntegerField()
    channels = peewee.IntegerField(default=1)
    seconds = peewee.FloatField()
    reference_transcript = peewee.TextField(default="")  # "": none
    reference_answer = peewee.TextField(default="")
    tags = JSONField(default=list)  # [str]
    conversation = peewee.CharField(max_length=255, default="")  # "": a single-turn item
    conversation_position = peewee.IntegerField(default=0)  # order within the conversation
    frames = JSONField(default=list)  # [{"path": relative path, "offset_s": seconds into audio}]
    source_turn = peewee.CharField(max_length=36, default="")  # the stored turn it came from

    class Meta:
        table_name = "dataset_item"
        indexes = ((("dataset", "key"), True), (("dataset", "position"), True))


class Run(BaseModel):
    """A dataset version replayed through one pipeline over the Converse path."""

    id = peewee.AutoField()
    name = peewee.CharField(max_length=200, unique=True)
    dataset_id: int
    dataset = peewee.ForeignKeyField(Dataset, backref="runs", on_delete="CASCADE")
    pipeline = peewee.CharField(index=True)
    config = JSONField(default=dict)  # the pipeline's configuration when the run started
    git_revision = peewee.CharField(default="")  # of the Parley checkout, if it is one
    pace = peewee.CharField(default="realtime")  # realtime | fast
    started_at = peewee.DateTimeField(default=_now)
    finished_at = peewee.DateTimeField(null=True)  # end of the latest replay of it
    latency_keys = JSONField(default=list)  # names of the numbers in RunItem.latency


class RunItem(BaseModel):
    """What one run got for one dataset item: the turn(s) it made, and, copied from them
    for fast comparisons, the transcript, answer, edit counts against the item's
    reference transcript (admin/transcripts.py) and the answering turn's latency."""

    id = peewee.AutoField()
    run_id: int
    item_id: int
    turn_id: str | None
    run = peewee.ForeignKeyField(Run, backref="items", on_delete="CASCADE")
    item = peewee.ForeignKeyField(DatasetItem, backref="results", on_delete="CASCADE")
    status = peewee.CharField(default="done")  # done | failed
    error = peewee.TextField(default="")
    # The turn whose answer counts (the last one the recording made); turn_ids lists
    # every turn the recording made, in order (usually one).
    turn = peewee.ForeignKeyField(Turn, null=True, backref="run_items", on_delete="SET NULL")
    turn_ids = JSONField(default=list)
    trace_id = peewee.CharField(default="")
    transcript = peewee.TextField(default="")  # the turns' transcripts, joined
    response = peewee.TextField(default="")
    word_errors = peewee.IntegerField(null=True)  # null: the item has no reference
    word_count = peewee.IntegerField(null=True)
    char_errors = peewee.IntegerField(null=True)
    char_count = peewee.IntegerField(null=True)
    # The answering turn's latency record (ms) as little-endian float64 numbers, one per
    # name in Run.latency_keys (NaN: not in this turn's record).
    latency = peewee.BlobField(null=True)
    finished_at = peewee.DateTimeField(default=_now)

    class Meta:
        table_name = "run_item"
        indexes = ((("run", "item"), True),)


MODELS: list[type[BaseModel]] = [
    Device,
    Conversation,
    Turn,
    Media,
    Span,
    DeviceToken,
    Dataset,
    DatasetItem,
    Run,
    RunItem,
]


def clip(field: peewee.CharField, text: str) -> str:
    """``text`` cut to ``field``'s ``max_length`` characters, for free text that goes into
    a bounded column: PostgreSQL refuses longer text where SQLite would keep it."""
    return text[: field.max_length]


def write_transaction() -> Any:
    """A transaction that takes the write lock up front on SQLite (BEGIN IMMEDIATE), so
    that several processes writing at once wait for each other (busy_timeout) instead
    of failing with "database is locked" when a read turns into a write."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


class PostgresqlDatabase(peewee.PostgresqlDatabase):
    """PostgreSQL as the store uses it. Its text types cannot hold NUL characters (SQLite's
    can, and an engine, an edge or a form may send one): a NUL in any string parameter is
    stored as U+FFFD instead of failing the whole statement."""

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if params:
            params = [_without_nul(value) for value in params]
        return super().execute_sql(sql, params)


class PooledPostgresqlDatabase(PostgresqlDatabase, PooledPostgresqlBase):
    """``postgresql+pool://``: the same, with peewee's connection pool."""


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def connect_database(url: str) -> peewee.Database:
    """A peewee database for ``url`` (``sqlite:///path``, ``postgresql://user:pass@host/db``;
    user and password may be percent-encoded), not yet connected nor migrated.

    SQLite files get WAL journaling, foreign keys and a 5 s busy timeout, so several
    processes can share one file. Raises ValueError for a URL peewee cannot use, and
    :class:`MissingDriver` (a ValueError) for a PostgreSQL URL without its driver."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return connect(
            url, pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000}
        )
    require_driver(url)
    try:
        return connect(url, unquote_password=True, unquote_user=True)
    except RuntimeError as exc:  # an unknown scheme
        raise ValueError(f"unsupported database URL {redact(url)!r}: {exc}") from None


def require_driver(url: str) -> None:
    """Raise MissingDriver for a PostgreSQL ``url`` unless psycopg2 (the postgres extra)
    or psycopg 3 imports; peewee would only fail later, deep in a query."""
    if urlsplit(url).scheme.split("+")[0] not in ("postgres", "postgresql"):
        return
    for module in ("psycopg2", "psycopg"):
        try:
            importlib.import_module(module)
            return
        except ImportError:
            continue
    raise MissingDriver(POSTGRES_EXTRA)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


register_database(PostgresqlDatabase, "postgres", "postgresql")
register_database(PooledPostgresqlDatabase, "postgres+pool", "postgresql+pool")

_opened: dict[str, peewee.Database] = {}
_opening = threading.Lock()


def open_database(url: str) -> peewee.Database:
    """Connect ``database`` to ``url`` (see :func:`connect_database`) and bring its
    schema up to date (:mod:`parley.migrations`: new tables, pending steps).

    Idempotent: the store and the span exporter of one process share one connection pool.
    """
    with _opening:
        if url in _opened and database.obj is _opened[url]:
            return _opened[url]
        db = connect_database(url)
        database.initialize(db)
        migrations.upgrade(db, MODELS, migrations.STORE_MIGRATIONS)
        _opened[url] = db
        return db
