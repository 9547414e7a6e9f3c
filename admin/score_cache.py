"""Annotations summed up per turn, so the accuracy page reads one narrow row per turn.

For each annotated turn, :class:`~admin.models.ScoreVector` holds int32 numbers laid out
by :class:`Layout`: for every counted question of the schema (the four 0-5 scores, then
the configured ordinal, boolean and categorical questions) how many annotators gave each
value, how many answered and how many said n/a (and, for a question bound to a stored
value, which value the turn had stored); then the summed STT edit counts (word errors,
reference words, char errors, reference chars) of the WER references, how many
annotations are references, and how many live annotations the turn has. Means,
distributions, error rates, confusion matrices and the coincidence matrices of
Krippendorff's alpha follow from these. Deleted annotations are not counted.

The admin refreshes a turn's row whenever it writes one of its annotations; :func:`sync`
catches anything else (annotations changed since the newest row, a total that no longer
adds up, or another schema) before each read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import peewee

from admin import schema as schemas
from admin.models import (
    SCORE_FIELDS,
    Annotation,
    ScoreVector,
    insert_raw,
    raw_rows,
    split_by_name,
)
from admin.schema import Question, Schema
from parley import db

EDITS = ("word_errors", "word_count", "char_errors", "char_count")
MARGIN = dt.timedelta(seconds=10)  # saves that committed late are re-read
_BATCH = 2000
_lock = threading.Lock()
_COLUMNS = ("turn", "pipeline", "annotations", "last_update", "layout", "numbers")
# Row layout of _query(): turn, pipeline, updated_at, 4 scores, answers, n/a, 4 edits.
_SCORES, _ANSWERS, _NA, _EDITS = 3, 7, 8, 9


@dataclass(frozen=True)
class Block:
    """Where one question's counts sit in a turn's numbers."""

    question: Question
    start: int

    @property
    def categories(self) -> int:
        return len(self.question.values)

    @property
    def answered(self) -> int:
        return self.start + self.categories

    @property
    def na(self) -> int:
        return self.answered + 1

    @property
    def stored(self) -> int:  # bound questions: index of the stored value (-1: none)
        return self.na + 1

    @property
    def end(self) -> int:
        return self.na + (2 if self.question.bind else 1)


@dataclass(frozen=True)
class Layout:
    blocks: tuple[Block, ...]
    width: int
    digest: str

    @classmethod
    def of(cls, current: Schema) -> Layout:
        blocks, start = [], 0
        for question in current.counted:
            block = Block(question, start)
            blocks.append(block)
            start = block.end
        return cls(tuple(blocks), start + len(EDITS) + 2, current.layout)

    def block(self, key: str) -> Block:
        return next(b for b in self.blocks if b.question.key == key)


def layout() -> Layout:
    return Layout.of(schemas.current())


def _query() -> peewee.ModelSelect[Any]:
    a = Annotation
    columns = [a.turn, a.pipeline, a.updated_at, *(getattr(a, f) for f in SCORE_FIELDS)]
    return (
        a.select(*columns, a.answers, a.not_applicable, *(getattr(a, e) for e in EDITS))
        .where(a.live())
        .order_by(a.turn)
    )


def _json(text: Any, empty: Any) -> Any:
    if not text or text in ("{}", "[]"):
        return empty
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return empty


def _count(numbers: np.ndarray, block: Block, row: tuple[Any, ...], answers: Any, na: Any) -> None:
    question = block.question
    if question.key in na:
        numbers[block.na] += 1
        return
    value = schemas.answer_of(question, row[_SCORES:_ANSWERS], answers)
    values = value if question.multiple and isinstance(value, list) else [value]
    indexes = [i for i in map(question.value_index, values) if value is not None and i is not None]
    if indexes:
        numbers[block.answered] += 1
        for index in indexes:
            numbers[block.start + index] += 1
    if question.bind and numbers[block.stored] < 0:
        answer = answers.get(question.key) if isinstance(answers, dict) else None
        stored = answer.get("stored") if isinstance(answer, dict) else None
        found = question.value_index(stored) if stored is not None else None
        numbers[block.stored] = len(question.values) if found is None else found


def _vector(current: Layout, turn_id: str, rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One turn's row of the cache from its annotations' raw rows."""
    numbers = np.zeros(current.width, dtype="<i4")
    for block in current.blocks:
        if block.question.bind:
            numbers[block.stored] = -1
    for row in rows:
        answers, na = _json(row[_ANSWERS], {}), _json(row[_NA], [])
        for block in current.blocks:
            _count(numbers, block, row, answers, na)
        if row[_EDITS + 1] is not None:  # a WER reference
            numbers[-6:-2] += [int(e or 0) for e in row[_EDITS:]]
            numbers[-2] += 1
    numbers[-1] = len(rows)
    last = max(row[2] for row in rows)
    return (turn_id, rows[0][1], len(rows), last, current.digest, numbers.tobytes())


def _vectors(current: Layout, rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Cache rows from annotation rows sorted by turn."""
    for turn_id, group in itertools.groupby(rows, key=itemgetter(0)):
        yield _vector(current, turn_id, list(group))


def _batches(items: Iterable[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, _BATCH)):
        yield batch


def _write(vectors: Iterable[tuple[Any, ...]]) -> int:
    done = 0
    for batch in _batches(vectors):
        with db.database.atomic():
            insert_raw(ScoreVector, _COLUMNS, batch)
        done += len(batch)
    return done


def refresh(turn_ids: Iterable[str]) -> int:
    """Recount these turns' annotations (a turn with none loses its row)."""
    ids = sorted(set(turn_ids))
    current = layout()
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        rows = raw_rows(_query().where(Annotation.turn.in_(chunk)))
        vectors = list(_vectors(current, rows))
        with db.database.atomic():
            ScoreVector.delete().where(ScoreVector.turn.in_(chunk)).execute()
            _write(vectors)
    return len(ids)


def _rebuild() -> int:
    """Every turn's row, from one ordered scan of the live annotations."""
    ScoreVector.delete().execute()
    cursor = db.database.execute(_query())
    rows = itertools.chain.from_iterable(iter(lambda: cursor.fetchmany(_BATCH), []))
    return _write(_vectors(layout(), rows))


def _changed(turn_ids: set[str]) -> list[str]:
    """Those of ``turn_ids`` whose cached row differs from their annotations."""
    if not turn_ids:
        return []
    current = layout()
    rows = raw_rows(_query().where(Annotation.turn.in_(turn_ids)))
    fresh = {v[0]: v for v in _vectors(current, rows)}
    v = ScoreVector
    stored = raw_rows(v.select(v.turn, v.annotations, v.numbers).where(v.turn.in_(turn_ids)))
    same = {
        t
        for t, n, numbers in stored
        if t in fresh and (n, bytes(numbers)) == (fresh[t][2], fresh[t][5])
    }
    return sorted(turn_ids - same)


def sync() -> int:
    """Bring the cache up to date; return how many turns were recounted (writing only
    what changed, so reading pages never writes)."""
    with _lock, db.database.connection_context():
        v = ScoreVector
        newest = v.select(peewee.fn.MAX(v.last_update)).scalar()
        sample = raw_rows(v.select(v.layout).limit(1))
        if newest is None or sample[0][0] != layout().digest:  # empty, or another schema
            return _rebuild()
        a = Annotation
        recent = a.select(a.turn).where(a.updated_at >= newest - MARGIN)  # deleted ones too;
        done = refresh(_changed({t for (t,) in raw_rows(recent)}))  # no DISTINCT: it skips
        counted = v.select(peewee.fn.SUM(v.annotations)).scalar() or 0  # the index
        if counted != a.select().where(a.live()).count():  # changed behind our back
            done = _rebuild()
        return done


def load(
    pipelines: Iterable[str] = (), turns: peewee.ModelSelect[Any] | None = None
) -> dict[str, np.ndarray]:
    """``{pipeline: numbers}``: one row of ``layout().width`` counts per annotated turn
    (of ``pipelines``; of the turns a subquery of turn ids selects)."""
    v = ScoreVector
    query = v.select(v.pipeline, v.numbers)
    wanted = list(pipelines)
    if wanted:
        query = query.where(v.pipeline.in_(wanted))
    if turns is not None:
        query = query.where(v.turn.in_(turns))
    with db.database.connection_context():
        rows = db.database.execute(query).fetchall()
    return split_by_name(rows, "<i4", layout().width)


def edit_sums(numbers: np.ndarray) -> tuple[int, int, int, int, int]:
    """Summed (word errors, words, char errors, chars, references)."""
    we, wc, ce, cc, n = (int(x) for x in numbers[:, -6:-1].sum(axis=0))
    return we, wc, ce, cc, n


def annotation_count(numbers: np.ndarray) -> int:
    return int(numbers[:, -1].sum())
