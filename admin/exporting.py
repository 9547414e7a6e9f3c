"""Turns and annotations as CSV or JSON Lines rows, streamed (100k rows stay cheap).

CSV cells that a spreadsheet would run as a formula (=, +, -, @ first) get a leading
apostrophe; JSON Lines keep every value as it is, the latency record as an object.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import peewee

from admin.latency_cache import METRICS
from admin.models import Annotation, User
from parley import db

TURN_FIELDS = (
    "id",
    "conversation",
    "device",
    "position",
    "pipeline",
    "created_at",
    "status",
    "transcript",
    "response",
    "error",
    "error_stage",
    "speech_seconds",
    "trace_id",
)
ANNOTATION_FIELDS = (
    "turn",
    "pipeline",
    "user",
    "stt_score",
    "llm_score",
    "tts_score",
    "overall_score",
    "corrected_transcript",
    "better_response",
    "comment",
    "word_errors",
    "word_count",
    "char_errors",
    "char_count",
    "created_at",
    "updated_at",
    "transcript",
    "response",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def turn_rows(turns: peewee.ModelSelect) -> Iterator[dict[str, Any]]:
    t, c = db.Turn, db.Conversation
    columns = [getattr(t, name) for name in TURN_FIELDS if name != "device"]
    query = turns.select(*columns, t.latency, c.device).join(c).order_by(t.created_at, t.id).dicts()
    yield from query.iterator()


def annotation_rows(turns: peewee.ModelSelect, user: User) -> Iterator[dict[str, Any]]:
    a, t = Annotation, db.Turn
    query = (
        a.select(a, User.name.alias("user_name"), t.transcript, t.response)
        .join(User, on=a.user == User.id)
        .switch(a)
        .join(t, on=a.turn == t.id)
        .where(a.turn.in_(turns.select(t.id)))
        .order_by(a.created_at, a.id)
    )
    if not user.is_admin:  # annotators export their own annotations only
        query = query.where(a.user == user.id)
    for row in query.dicts().iterator():
        row["user"] = row.pop("user_name")
        yield {name: row.get(name) for name in ANNOTATION_FIELDS}


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def csv_lines(
    rows: Iterable[dict[str, Any]], fields: Iterable[str], latency: bool
) -> Iterator[str]:
    columns = [*fields, *(METRICS if latency else ())]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        record = row.pop("latency", None) or {}
        writer.writerow([_cell(row.get(c, record.get(c, ""))) for c in columns])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, default=str, ensure_ascii=False) + "\n"
