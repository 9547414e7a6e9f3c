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
from admin.schema import Schema
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
    "outputs",
)
ANNOTATION_FIELDS = (
    "turn",
    "pipeline",
    "user",
    "stt_score",
    "llm_score",
    "tts_score",
    "overall_score",
    "transcript_state",
    "corrected_transcript",
    "better_response",
    "comment",
    "word_errors",
    "word_count",
    "char_errors",
    "char_count",
    "done",
    "not_applicable",
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


def question_fields(current: Schema) -> tuple[str, ...]:
    """One column per configured question (``q_<key>``); a bound question adds the value
    the turn had stored and whether the annotator found it right."""
    out: list[str] = []
    for q in current.extra:
        out.append(f"q_{q.key}")
        if q.bind:
            out += [f"q_{q.key}_stored", f"q_{q.key}_correct"]
    return tuple(out)


def _questions(row: dict[str, Any], current: Schema) -> dict[str, Any]:
    raw = row.get("answers")
    answers: dict[str, Any] = raw if isinstance(raw, dict) else {}
    na = row.get("not_applicable") or []
    out: dict[str, Any] = {}
    for q in current.extra:
        answer = answers.get(q.key)
        if q.key in na:
            out[f"q_{q.key}"] = "n/a"
        else:
            out[f"q_{q.key}"] = (
                answer.get("value") if q.bind and isinstance(answer, dict) else answer
            )
        if q.bind:
            stored = answer.get("stored") if isinstance(answer, dict) else None
            out[f"q_{q.key}_stored"] = stored
            out[f"q_{q.key}_correct"] = (
                None if not isinstance(answer, dict) else answer.get("value") == stored
            )
    return out


def annotation_rows(
    turns: peewee.ModelSelect, user: User, current: Schema
) -> Iterator[dict[str, Any]]:
    """Live annotations of ``turns`` (annotators: their own), with the questions'
    columns (question_fields)."""
    a, t = Annotation, db.Turn
    query = (
        a.select(a, User.name.alias("user_name"), t.transcript, t.response)
        .join(User, on=a.user == User.id)
        .switch(a)
        .join(t, on=a.turn == t.id)
        .where(a.turn.in_(turns.select(t.id)) & a.live())
        .order_by(a.created_at, a.id)
    )
    if not user.is_admin:  # annotators export their own annotations only
        query = query.where(a.user == user.id)
    for row in query.dicts().iterator():
        row["user"] = row.pop("user_name")
        yield {**{name: row.get(name) for name in ANNOTATION_FIELDS}, **_questions(row, current)}


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):  # multi-label answers, n/a lists, stage outputs
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
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
