"""Turn latency records as numbers the benchmark pages can read fast.

``Turn.latency`` is JSON text: parsing 100k records takes seconds on a small machine. So
the admin keeps one row per turn in :class:`~admin.models.LatencyVector` with the
metrics below packed as float64 (NaN: missing), and reading every turn's figures is one
query over one narrow table plus ``numpy.frombuffer``.

The cache follows the store by itself (:func:`sync`, run before each read): turns it has
not seen are added (a count comparison decides whether to look), and turns started
within ``RECHECK`` (the only ones still changing: late figures such as voice-to-voice
are merged in after a turn ends) are compared with their source and redone if it
changed. Deleted turns leave through the foreign key's cascade. :func:`rebuild` redoes
everything (e.g. after editing old turns by hand).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import peewee

from admin.filters import TurnFilters
from admin.models import LatencyVector, insert_raw, raw_rows, split_by_name
from parley import db

EXTRA_KINDS = ("speech_llm", "analyse", "retrieve", "caption")
METRICS: tuple[str, ...] = (
    "endpointing_ms",
    "stt_ms",
    "stt_model_ms",
    "stt_overhead_ms",
    "llm_ms",
    "llm_model_ms",
    "llm_overhead_ms",
    "tts_ms",
    "tts_model_ms",
    "tts_overhead_ms",
    "send_ms",
    "send_overhead_ms",
    "overhead_ms",
    "llm_first_token_ms",
    "first_audio_sent_ms",
    "voice_to_voice_ms",
    "turn_total_ms",
    # The other stage kinds (issue 14): each with its model/transfer split.
    *(f"{kind}_{part}" for kind in EXTRA_KINDS for part in ("ms", "model_ms", "overhead_ms")),
)
LAYOUT = 2  # bump when METRICS changes: rows made with another layout are redone
RECHECK = dt.timedelta(hours=24)
_BATCH = 2000
_lock = threading.Lock()  # one sync at a time per process


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def pack(record: dict[str, Any] | None) -> bytes:
    """The metrics of one latency record as float64 bytes (NaN where missing)."""
    record = record or {}
    values = []
    for name in METRICS:
        value = record.get(name)
        values.append(float(value) if isinstance(value, int | float) else math.nan)
    return np.asarray(values, dtype="<f8").tobytes()


def _pack_many(records: list[dict[str, Any]]) -> np.ndarray:
    """(records x METRICS) float64, NaN where missing: one numpy conversion per batch."""
    try:
        return np.array([[r.get(m) for m in METRICS] for r in records], dtype="<f8").reshape(
            len(records), len(METRICS)
        )
    except (TypeError, ValueError):  # a value that is not a number: go one by one
        return np.array([np.frombuffer(pack(r), dtype="<f8") for r in records]).reshape(
            len(records), len(METRICS)
        )


_COLUMNS = (
    "turn",
    "pipeline",
    "device",
    "created_at",
    "status",
    "source_len",
    "layout",
    "numbers",
    "first_audio_ms",
)
_FIRST_AUDIO = METRICS.index("first_audio_sent_ms")


def _store(turn_ids: Sequence[str] | None) -> int:
    """(Re)make the vectors of these turns (None: of every turn, the old ones being
    gone already) from the store."""
    t = db.Turn
    query = t.select(
        t.id,
        t.pipeline,
        t.created_at,
        t.status,
        t.latency,
        peewee.fn.LENGTH(t.latency),
        db.Conversation.device,
    ).join(db.Conversation)
    chunks = (
        [query]
        if turn_ids is None
        else [
            query.where(t.id.in_(list(turn_ids[i : i + _BATCH])))
            for i in range(0, len(turn_ids), _BATCH)
        ]
    )
    done = 0
    for chunk_query in chunks:
        cursor = db.database.execute(chunk_query)
        while rows := cursor.fetchmany(_BATCH):
            records = [json.loads(row[4]) if row[4] else {} for row in rows]
            numbers = _pack_many(records)
            first = numbers[:, _FIRST_AUDIO]
            vectors = [
                (
                    row[0],
                    row[1],
                    row[6] or "",
                    row[2],
                    row[3],
                    row[5] or 0,
                    LAYOUT,
                    numbers[i].tobytes(),
                    None if math.isnan(first[i]) else float(first[i]),
                )
                for i, row in enumerate(rows)
            ]
            with db.database.atomic():
                if turn_ids is not None:
                    ids = [row[0] for row in rows]
                    LatencyVector.delete().where(LatencyVector.turn.in_(ids)).execute()
                insert_raw(LatencyVector, _COLUMNS, vectors)
            done += len(vectors)
    return done


def _missing() -> list[str]:
    if db.Turn.select().count() == LatencyVector.select().count():
        return []
    has_vector = LatencyVector.select(LatencyVector.turn).where(LatencyVector.turn == db.Turn.id)
    query = db.Turn.select(db.Turn.id).where(~peewee.fn.EXISTS(has_vector))
    return [turn_id for (turn_id,) in raw_rows(query)]


def _stale(now: dt.datetime) -> list[str]:
    """Recent turns (the only ones still changing) whose source changed."""
    v, t = LatencyVector, db.Turn
    query = (
        v.select(v.turn, v.status, v.source_len, t.status, peewee.fn.LENGTH(t.latency))
        .join(t, on=v.turn == t.id)
        .where(v.created_at >= now - RECHECK)
    )
    return [
        turn_id
        for turn_id, status, length, turn_status, turn_len in db.database.execute(query)
        if status != turn_status or length != (turn_len or 0)
    ]


def sync(now: dt.datetime | None = None) -> int:
    """Bring the cache up to date; return how many vectors were (re)made."""
    with _lock, db.database.connection_context():
        layouts = raw_rows(LatencyVector.select(LatencyVector.layout).limit(1))
        if layouts and layouts[0][0] != LAYOUT:  # all rows share one layout
            return _rebuild()
        missing = _missing()
        if len(missing) > 10 * _BATCH:  # a first build (or most of one): one scan
            return _rebuild()
        return _store(sorted(set(missing) | set(_stale(now or _now()))))


def rebuild() -> int:
    """Redo every vector."""
    with _lock, db.database.connection_context():
        return _rebuild()


def _rebuild() -> int:
    LatencyVector.delete().execute()
    return _store(None)


@dataclass(frozen=True)
class Selection:
    """Which vectors to read: the latency page's filters."""

    pipelines: tuple[str, ...] = ()
    device: str = ""
    statuses: tuple[str, ...] = ("done",)
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None
    run: int | None = None  # a replay run's answering turns
    dataset: int | None = None  # the turns of a dataset version's runs

    def apply(self, query: peewee.ModelSelect[Any]) -> peewee.ModelSelect[Any]:
        v = LatencyVector
        if self.pipelines:
            query = query.where(v.pipeline.in_(self.pipelines))
        if self.statuses:
            query = query.where(v.status.in_(self.statuses))
        if self.device:
            query = query.where(v.device == self.device)
        if self.date_from is not None:
            query = query.where(v.created_at >= self.date_from)
        if self.date_to is not None:
            query = query.where(v.created_at < self.date_to)
        replayed = TurnFilters(run=self.run, dataset=self.dataset).replayed_turns()
        if replayed is not None:
            query = query.where(v.turn.in_(replayed))
        return query


def load(selection: Selection) -> dict[str, np.ndarray]:
    """``{pipeline: values}`` with ``values[i, METRICS.index(name)]`` (NaN: missing), for
    the selected turns (call :func:`sync` first): one scan of a narrow table."""
    v = LatencyVector
    with db.database.connection_context():
        rows = db.database.execute(selection.apply(v.select(v.pipeline, v.numbers))).fetchall()
    return split_by_name(rows, "<f8", len(METRICS))


def slowest(selection: Selection, limit: int = 10) -> list[tuple[str, str, float]]:
    """The turns slowest to their first answer audio: (turn id, pipeline, ms)."""
    v = LatencyVector
    query = (
        selection.apply(v.select(v.turn, v.pipeline, v.first_audio_ms))
        .where(v.first_audio_ms.is_null(False))
        .order_by(v.first_audio_ms.desc())
        .limit(limit)
    )
    with db.database.connection_context():
        return [(str(t), str(p), float(ms)) for t, p, ms in db.database.execute(query).fetchall()]
