"""The admin's own tables, on the store's database (``parley.db.database``).

Users and their annotations live next to the turns they describe, so a backup of the
store is a backup of the annotations. Every table is prefixed ``admin_``.
:class:`LatencyVector` is a cache (see admin/latency_cache.py), never a source of truth:
dropping it only costs a rebuild.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import peewee
from playhouse.migrate import migrate

from parley import db, migrations

ROLES = ("annotator", "admin")
SCORE_FIELDS = ("stt_score", "llm_score", "tts_score", "overall_score")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class AdminModel(peewee.Model):
    class Meta:
        database = db.database


class User(AdminModel):
    id = peewee.AutoField()
    name = peewee.CharField(unique=True, max_length=64)
    password_hash = peewee.CharField(max_length=256)  # werkzeug.security (scrypt)
    role = peewee.CharField(default="annotator")  # "annotator" | "admin"
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_login = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "admin_user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __str__(self) -> str:
        return str(self.name)


TRANSCRIPT_STATES = ("left", "confirmed", "edited")


class Annotation(AdminModel):
    """One annotator's judgement of one turn (one live annotation per turn and user).

    ``transcript_state`` says what the annotator did with the STT transcript: *left* it
    unchecked, *confirmed* it was right, or *edited* it into what was really said. Only
    confirmed and edited ones are WER references (``corrected_transcript`` and the edit
    counts). ``done``: every required question was answered or marked n/a when it was
    saved (admin/answers.py); only done annotations count as progress. Deleting is
    soft: ``deleted_at`` is set and the row is left out of everything but the admins'
    view of deleted annotations.
    """

    id = peewee.AutoField()
    turn_id: str  # the foreign keys' raw values (peewee adds them; declared for mypy)
    user_id: int
    turn = peewee.ForeignKeyField(db.Turn, backref="annotations", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="annotations", on_delete="CASCADE")
    pipeline = peewee.CharField(default="")  # the turn's, copied: summaries skip the join
    stt_score = peewee.IntegerField(null=True)  # 0-5, null: not scored
    llm_score = peewee.IntegerField(null=True)
    tts_score = peewee.IntegerField(null=True)
    overall_score = peewee.IntegerField(null=True)
    corrected_transcript = peewee.TextField(default="")  # what was really said
    transcript_state = peewee.CharField(default="left")  # one of TRANSCRIPT_STATES
    better_response = peewee.TextField(default="")
    comment = peewee.TextField(default="")
    # Edit counts of the turn's transcript against corrected_transcript (computed on save).
    word_errors = peewee.IntegerField(null=True)
    word_count = peewee.IntegerField(null=True)
    char_errors = peewee.IntegerField(null=True)
    char_count = peewee.IntegerField(null=True)
    # The configured questions' answers (admin/schema.py): {key: value}; a question bound
    # to a stored value keeps {"value": label, "stored": label seen}.
    answers = db.JSONField(default=dict)
    not_applicable = db.JSONField(default=list)  # keys (scores, questions) marked n/a
    done = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)
    deleted_at = peewee.DateTimeField(null=True)  # soft delete
    deleted_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "admin_annotation"
        indexes = (
            (("user", "pipeline"), False),
            (("user", "updated_at"), False),
            (("pipeline",), False),
            # progress counts a user's live, done annotations from the index alone
            (("user", "pipeline", "done", "deleted_at"), False),
        )

    @classmethod
    def live(cls) -> peewee.Expression:
        """The condition for annotations that are not deleted."""
        return cls.deleted_at.is_null()


# One live annotation per turn and user (deleted ones are kept beside it).
LIVE_INDEX = "admin_annotation_live_turn_user"
Annotation.add_index(
    Annotation.index(
        Annotation.turn, Annotation.user, unique=True, where=Annotation.live(), name=LIVE_INDEX
    )
)


class TurnGroup(AdminModel):
    """Turns judged together: a conversation, or a scripted multi-turn scenario."""

    id = peewee.AutoField()
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "admin_turn_group"

    def __str__(self) -> str:
        return str(self.name)


class TurnGroupMember(AdminModel):
    id = peewee.AutoField()
    turn_id: str
    group = peewee.ForeignKeyField(TurnGroup, backref="members", on_delete="CASCADE")
    turn = peewee.ForeignKeyField(db.Turn, backref="group_memberships", on_delete="CASCADE")
    position = peewee.IntegerField(default=0)

    class Meta:
        table_name = "admin_turn_group_member"
        indexes = ((("group", "turn"), True),)


class GroupAnnotation(AdminModel):
    """One annotator's overall judgement of a whole group."""

    id = peewee.AutoField()
    user_id: int
    group = peewee.ForeignKeyField(TurnGroup, backref="annotations", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="group_annotations", on_delete="CASCADE")
    score = peewee.IntegerField(null=True)  # 0-5
    not_applicable = peewee.BooleanField(default=False)  # "n/a" given instead of a score
    comment = peewee.TextField(default="")
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "admin_group_annotation"
        indexes = ((("group", "user"), True),)


class LatencyVector(AdminModel):
    """A turn's latency record as packed float64 numbers (admin/latency_cache.py)."""

    turn = peewee.ForeignKeyField(
        db.Turn, primary_key=True, backref="latency_vector", on_delete="CASCADE"
    )
    # No index on pipeline or status: pages read every row, and a full scan is faster.
    pipeline = peewee.CharField()
    device = peewee.CharField(default="")
    created_at = peewee.DateTimeField(index=True)
    status = peewee.CharField()
    source_len = peewee.IntegerField()  # len() of the JSON it was made from
    layout = peewee.IntegerField()  # version of the metric list the numbers follow
    numbers = peewee.BlobField()
    first_audio_ms = peewee.FloatField(null=True, index=True)  # for "slowest turns"

    class Meta:
        table_name = "admin_latency_vector"


class ScoreVector(AdminModel):
    """A turn's annotations summed up: how many annotators gave each score to each stage,
    and the STT edit counts (admin/score_cache.py). A cache, like LatencyVector."""

    turn = peewee.ForeignKeyField(
        db.Turn, primary_key=True, backref="score_vector", on_delete="CASCADE"
    )
    pipeline = peewee.CharField()
    annotations = peewee.IntegerField()
    last_update = peewee.DateTimeField(index=True)  # newest annotation counted
    layout = peewee.CharField(default="")  # the questions the numbers follow (a digest)
    numbers = peewee.BlobField()

    class Meta:
        table_name = "admin_score_vector"


class Setting(AdminModel):
    """A setting admins change in the site (e.g. whether annotators see results)."""

    key = peewee.CharField(primary_key=True, max_length=64)
    value = db.JSONField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "admin_setting"


class Queue(AdminModel):
    """A named annotation queue: which items (``kind``: admin/queues.py), for whom
    (:class:`QueueMember`), and how many ratings each item should get."""

    id = peewee.AutoField()
    name = peewee.CharField(unique=True, max_length=200)
    kind = peewee.CharField(default="turns")  # a key of admin.queues.KINDS
    description = peewee.TextField(default="")
    filters = db.JSONField(default=dict)  # turns: TurnFilters.args(); groups: {"groups": [ids]}
    target = peewee.IntegerField(default=1)  # ratings wanted per item, by anyone assigned
    active = peewee.BooleanField(default=True)
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "admin_queue"

    def __str__(self) -> str:
        return str(self.name)


class QueueMember(AdminModel):
    """An annotator assigned to a queue."""

    id = peewee.AutoField()
    queue_id: int
    user_id: int
    queue = peewee.ForeignKeyField(Queue, backref="members", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="queues", on_delete="CASCADE")

    class Meta:
        table_name = "admin_queue_member"
        indexes = ((("queue", "user"), True),)


class Preference(AdminModel):
    """One annotator's blind A/B judgement of two runs' answers to one dataset item
    (admin/pairwise.py): which answer was better, or a tie.

    ``run_a``/``run_b`` are the queue's two runs, the lower id first (so every queue
    on the same two runs adds to the same counts);
    ``choice`` is "a", "b" or "tie" in those terms, whatever side of the screen each
    answer was on (``shown``: "ab" when run A's answer was shown as A, "ba" when
    swapped, so position bias can be checked). ``item`` is the item in run A's dataset
    version (runs of several versions pair up by the item's key). One preference per
    annotator, run pair and item; answering again changes it."""

    id = peewee.AutoField()
    user_id: int
    run_a_id: int
    run_b_id: int
    item_id: int
    user = peewee.ForeignKeyField(User, backref="preferences", on_delete="CASCADE")
    run_a = peewee.ForeignKeyField(db.Run, backref="+", on_delete="CASCADE")
    run_b = peewee.ForeignKeyField(db.Run, backref="+", on_delete="CASCADE")
    item = peewee.ForeignKeyField(db.DatasetItem, backref="+", on_delete="CASCADE")
    queue = peewee.ForeignKeyField(Queue, null=True, on_delete="SET NULL", backref="+")
    choice = peewee.CharField(max_length=3)  # "a" | "b" | "tie"
    shown = peewee.CharField(max_length=2, default="ab")  # "ab" | "ba"
    comment = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "admin_preference"
        indexes = (
            (("run_a", "run_b", "item", "user"), True),
            (("user", "run_a", "run_b"), False),
        )


ADMIN_MODELS: list[type[AdminModel]] = [
    User,
    Annotation,
    TurnGroup,
    TurnGroupMember,
    GroupAnnotation,
    LatencyVector,
    ScoreVector,
    Setting,
    Queue,
    QueueMember,
    Preference,
]

# Indexes on the store's own tables that the admin's pages need at 100k turns.
_STORE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS admin_turn_pipeline_created ON turn (pipeline, created_at)",
    # the queue walks finished turns in time order
    "CREATE INDEX IF NOT EXISTS admin_turn_queue ON turn (status, created_at, id)",
    "CREATE INDEX IF NOT EXISTS admin_turn_queue_pipeline"
    " ON turn (pipeline, status, created_at, id)",
    "CREATE INDEX IF NOT EXISTS admin_media_turn_kind ON media (turn_id, kind)",
    "CREATE INDEX IF NOT EXISTS admin_media_path ON media (path)",
)


def bulk_insert(model: type[peewee.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows with one prepared statement (peewee's insert_many builds SQL text
    for every value: 20x slower at 100k rows). Keys are field names; fields a row leaves
    out get their defaults (or NULL). Run it inside a transaction."""
    if not rows:
        return
    given = set().union(*(row.keys() for row in rows))
    fields = [
        f
        for f in model._meta.sorted_fields
        if f.name in given or (f.default is not None and not isinstance(f, peewee.AutoField))
    ]
    defaults = {f.name: f.default for f in fields}

    def value(row: Mapping[str, Any], f: peewee.Field) -> Any:
        if f.name in row:
            return f.db_value(row[f.name])
        default = defaults[f.name]
        return f.db_value(default() if callable(default) else default)

    _insert_rows(model, fields, [tuple(value(r, f) for f in fields) for r in rows])


def insert_raw(
    model: type[peewee.Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows of values the driver takes as they are (no field conversion): the
    caches' fast path, with values read raw from the same database."""
    if rows:
        _insert_rows(model, [model._meta.fields[f] for f in fields], rows)


def _insert_rows(
    model: type[peewee.Model], fields: Sequence[peewee.Field], rows: Sequence[tuple[Any, ...]]
) -> None:
    """One INSERT per row through the driver's executemany (SQLite: fast), or, on
    PostgreSQL, psycopg2's execute_values: many rows per statement (executemany there
    is a round trip per row, 3x slower for the caches' rebuilds)."""
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    table = model._meta.table_name
    cursor = db.database.cursor()
    if isinstance(db.database.obj, peewee.PostgresqlDatabase):
        from psycopg2.extras import execute_values

        execute_values(cursor, f'INSERT INTO "{table}" ({columns}) VALUES %s', rows, page_size=500)
        return
    marks = ", ".join([db.database.obj.param] * len(fields))
    cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', rows)


def split_by_name(
    rows: Sequence[tuple[str, bytes]], dtype: str, width: int
) -> dict[str, np.ndarray]:
    """(name, packed numbers) rows -> ``{name: (rows x width) array}``, with no Python
    loop over the rows (the caches' reads: 100k rows in a few milliseconds)."""
    if not rows:
        return {}
    names = list(map(itemgetter(0), rows))
    values = np.frombuffer(b"".join(map(itemgetter(1), rows)), dtype=dtype).reshape(-1, width)
    distinct = sorted(set(names))
    if len(distinct) == 1:
        return {distinct[0]: values}
    code = {name: i for i, name in enumerate(distinct)}
    codes = np.fromiter(map(code.__getitem__, names), dtype=np.int32, count=len(names))
    return {name: values[codes == i] for i, name in enumerate(distinct)}


def raw_rows(query: peewee.Query) -> list[tuple[Any, ...]]:
    """A query's rows as the driver returns them: no model objects, no conversions (the
    fast path for aggregates and id lists)."""
    return list(db.database.execute(query).fetchall())


def _store_indexes(schema: migrations.Schema) -> None:
    for statement in _STORE_INDEXES:
        schema.database.execute_sql(statement)


def _annotation_states(schema: migrations.Schema) -> None:
    """Transcript states, answers, n/a, done and soft delete on existing annotations.

    Old rows: a corrected transcript that differs from the STT's (it had edit errors)
    was *edited*; one left as the STT wrote it cannot be told from a blind "Enter" (the
    box used to start with the STT text), so it is *left* and no longer a WER
    reference. An annotation with any score is *done*, its blank scores being the old
    "not scored" (now n/a); one without any score is not done and returns to the queue.
    """
    a = Annotation
    schema.add_columns(
        a, "transcript_state", "answers", "not_applicable", "done", "deleted_at", "deleted_by"
    )
    scores = [getattr(a, name) for name in SCORE_FIELDS]
    a.update(transcript_state="edited").where(a.char_errors > 0).execute()
    a.update(word_errors=None, word_count=None, char_errors=None, char_count=None).where(
        a.transcript_state == "left"
    ).execute()
    for pattern in itertools.product((True, False), repeat=len(scores)):  # True: blank
        if all(pattern):
            continue  # no score at all: not done
        blank = [name for name, empty in zip(SCORE_FIELDS, pattern, strict=True) if empty]
        match = [f.is_null(empty) for f, empty in zip(scores, pattern, strict=True)]
        a.update(done=True, not_applicable=blank).where(*match).execute()


def _live_index(schema: migrations.Schema) -> None:
    """One live annotation per turn and user: the unique index leaves deleted ones out."""
    table = Annotation._meta.table_name
    names = {index.name for index in schema.database.get_indexes(table)}
    if "admin_annotation_turn_id_user_id" in names:
        migrate(schema.migrator.drop_index(table, "admin_annotation_turn_id_user_id"))
    if LIVE_INDEX not in names:
        schema.database.execute_sql(
            f'CREATE UNIQUE INDEX "{LIVE_INDEX}" ON "{table}" ("turn_id", "user_id") '
            "WHERE deleted_at IS NULL"
        )


def _new_columns(schema: migrations.Schema) -> None:
    """Group n/a, the score cache's layout digest, the progress counts' index."""
    schema.add_columns(GroupAnnotation, "not_applicable")
    schema.add_columns(ScoreVector, "layout")
    schema.add_index(Annotation, ("user_id", "pipeline", "done", "deleted_at"), False)


def _preferences(schema: migrations.Schema) -> None:
    """Blind A/B preferences between two runs (issue 12): ``admin_preference`` is new,
    so step 1 creates it with its indexes on a database that lacks it. Recorded so a
    database says it has it."""


# The admin's schema steps (see parley/migrations.py), named "admin-...".
ADMIN_MIGRATIONS: list[migrations.Migration] = [
    migrations.Migration("admin-0001-store-indexes", _store_indexes),
    migrations.Migration("admin-i13-annotation-states", _annotation_states),
    migrations.Migration("admin-i13-annotation-live-index", _live_index),
    migrations.Migration("admin-i13-group-na-score-layout", _new_columns),
    migrations.Migration("admin-i12-preferences", _preferences),
]


def create_admin_tables() -> None:
    """Bring the admin's tables and indexes up to date (the store's must exist)."""
    migrations.upgrade(db.database.obj, ADMIN_MODELS, ADMIN_MIGRATIONS)
