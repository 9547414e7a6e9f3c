"""The runs a comparison reads from the store (research/compare.py): finding runs by
name or id, the compared rows (items paired up by key across dataset versions,
filtered by tag), and each run's status, edit counts, latency and annotation scores
as arrays over those rows (:class:`RunFigures`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from admin.models import raw_rows
from parley import db
from parley.errors import ParleyError
from research import admin_tables
from research.stats import FloatArray

# Latency figures shown per run: (name shown, latency record key).
LATENCY = (
    ("voice_to_voice_ms", "voice_to_voice_ms"),
    ("endpointing_ms", "endpointing_ms"),
    ("first_audio_ms", "first_audio_sent_ms"),  # VAD decision -> first answer audio sent
    ("turn_total_ms", "turn_total_ms"),
)
_RECORD_KEYS = dict(LATENCY)
_NAME_LIMIT = 200  # Run.name's length


class CompareError(ParleyError):
    pass


@dataclass
class RunFigures:
    """One run's figures as arrays over the compared rows (NaN: no value)."""

    row: db.Run
    dataset: db.Dataset
    status: np.ndarray  # int8: 1 done, 0 failed, -1 not replayed
    item_ids: np.ndarray  # int64: the item id in this run's dataset version, -1: none
    edits: FloatArray  # (rows, 4): word errors, words, char errors, chars
    latency: dict[str, FloatArray] = field(default_factory=dict)  # record key -> values
    scores: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)

    def value(self, name: str) -> FloatArray:
        """A latency figure by its name here or in the record (all NaN if absent)."""
        found = self.latency.get(_RECORD_KEYS.get(name, name))
        return np.full(len(self.status), np.nan) if found is None else found


def _digits(text: str) -> int | None:
    """ASCII digits that fit an integer column as an int (no "²", no 10**20), else None."""
    return int(text) if text.isascii() and text.isdecimal() and len(text) <= 9 else None


def find_run(ref: str | int) -> db.Run | None:
    """One run by reference: an int is an id; ``#N`` is always the run with id N; any
    other text is a run name, and only when no run has that name are digits an id (a
    run named "123" is found by "123"; the run with id 123 then by "#123")."""
    if isinstance(ref, int):
        return db.Run.get_or_none(db.Run.id == ref) if 0 < ref < 10**9 else None
    text = ref.strip()
    if text.startswith("#"):
        number = _digits(text[1:])
        return None if number is None else db.Run.get_or_none(db.Run.id == number)
    # A name no run can have (NUL, longer than the column) is looked up by nothing:
    # PostgreSQL refuses such text, and ids beyond an integer column's range.
    if not text or "\x00" in text or len(text) > _NAME_LIMIT:
        return None
    named = db.Run.select().where(db.Run.name == text).order_by(db.Run.id).first()
    if named is not None:
        return named
    number = _digits(text)
    return None if number is None else db.Run.get_or_none(db.Run.id == number)


def find_runs(refs: Sequence[str | int]) -> list[db.Run]:
    found: list[db.Run] = []
    for ref in refs:
        run = find_run(ref)
        if run is None:
            text = str(ref).strip()
            recent = db.Run.select(db.Run.name).order_by(db.Run.started_at.desc()).limit(5)
            names = ", ".join(r.name for r in recent) or "none yet"
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise CompareError(f"unknown run {shown!r} (recent runs: {names})")
        if any(r.id == run.id for r in found):
            raise CompareError(f"run {run.name!r} is named twice")
        found.append(run)
    return found


def compared_rows(
    datasets: Sequence[db.Dataset], tag: str
) -> tuple[list[tuple[Any, ...]], dict[int, ItemIndex], list[str]]:
    """Compared rows (one per item key, in the first dataset's order, tag-filtered),
    each dataset's item id -> row index, and every tag seen."""
    i = db.DatasetItem
    columns = (i.id, i.key, i.position, i.tags, i.conversation, i.conversation_position)
    rows: list[tuple[Any, ...]] = []
    by_key: dict[str, int] = {}
    indexes: dict[int, ItemIndex] = {}
    parsed: dict[str, list[str]] = {}  # tags as stored -> list (most items share a few)
    for dataset in datasets:
        mapping: dict[int, int] = {}
        query = i.select(*columns).where(i.dataset == dataset.id).order_by(i.position)
        for item_id, key, position, text, conversation, place in raw_rows(query):
            tags = parsed.get(text)
            if tags is None:
                tags = parsed[text] = json.loads(text or "[]")
            if tag and tag not in tags:
                continue
            row = by_key.get(key)
            if row is None:
                row = by_key[key] = len(rows)
                rows.append((item_id, key, position, tags, conversation, place))
            mapping[item_id] = row
        indexes[dataset.id] = ItemIndex(mapping)
    return rows, indexes, sorted({t for tags in parsed.values() for t in tags})


class ItemIndex:
    """Dataset item ids -> compared row indexes, for whole arrays at once."""

    def __init__(self, mapping: dict[int, int]) -> None:
        ids = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        rows = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        order = np.argsort(ids)
        self.ids, self.rows = ids[order], rows[order]

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The row of each item id; -1 for items not compared (filtered out)."""
        if not len(self.ids):
            return np.full(len(item_ids), -1, dtype=np.int64)
        at = np.searchsorted(self.ids, item_ids).clip(0, len(self.ids) - 1)
        return np.where(self.ids[at] == item_ids, self.rows[at], -1)


def load_run(run: db.Run, dataset: db.Dataset, index: ItemIndex, size: int) -> RunFigures:
    r = db.RunItem
    status = np.full(size, -1, dtype=np.int8)
    item_ids = np.full(size, -1, dtype=np.int64)
    item_ids[index.rows] = index.ids
    edits = np.full((size, 4), np.nan)
    keys = list(run.latency_keys or [])
    latency = np.full((size, len(keys)), np.nan)
    query = r.select(
        r.item, r.status, r.word_errors, r.word_count, r.char_errors, r.char_count, r.latency
    ).where(r.run == run.id)
    found = raw_rows(query)
    if found:
        columns = list(zip(*found, strict=True))
        rows = index.rows_of(np.array(columns[0], dtype=np.int64))
        kept = rows >= 0  # the others are filtered out by the tag
        status[rows[kept]] = (np.array(columns[1], dtype=object) == "done")[kept]
        edits[rows[kept]] = np.array(columns[2:6], dtype=np.float64).T[kept]
        blobs = [bytes(b) if b else b"" for b in columns[6]]
        width = 8 * len(keys)
        if all(len(b) == width for b in blobs):  # the usual case: one vectorised read
            numbers = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), len(keys))
            latency[rows[kept]] = numbers[kept]
        else:  # keys were added during the run: older items have fewer numbers
            for row, blob in zip(rows, blobs, strict=True):
                if row >= 0 and blob:
                    numbers = np.frombuffer(blob, dtype="<f8")
                    latency[row, : len(numbers)] = numbers
    data = RunFigures(run, dataset, status, item_ids, edits)
    data.latency = {key: latency[:, j] for j, key in enumerate(keys)}
    return data


def add_scores(data: list[RunFigures], indexes: dict[int, ItemIndex]) -> None:
    sums = admin_tables.score_sums([d.row.id for d in data])
    for run in data:
        size = len(run.status)
        totals = np.zeros((size, len(admin_tables.SCORES)))
        counts = np.zeros_like(totals)
        if run.row.id in sums:
            item_ids, total, count = sums[run.row.id]
            rows = indexes[run.dataset.id].rows_of(item_ids)
            kept = rows >= 0
            totals[rows[kept]], counts[rows[kept]] = total[kept], count[kept]
        for j, score in enumerate(admin_tables.SCORES):
            run.scores[score] = (totals[:, j], counts[:, j])
