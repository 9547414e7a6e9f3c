"""Annotations summed up per turn, so the accuracy page reads one narrow row per turn.

For each annotated turn, :class:`~admin.models.ScoreVector` holds int32 numbers: for
each score field (STT, LLM, TTS, overall) how many annotators gave it 0, 1, ... 5, then
the summed STT edit counts (word errors, reference words, char errors, reference
chars), how many annotations carry them, and how many annotations the turn has. Means,
error rates and the coincidence matrices of Krippendorff's alpha follow from these.

The admin refreshes a turn's row whenever it writes one of its annotations; :func:`sync`
catches anything else (annotations changed since the newest row, or a total that no
longer adds up) before each read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

import numpy as np
import peewee

from admin.models import (
    SCORE_FIELDS,
    Annotation,
    ScoreVector,
    insert_raw,
    raw_rows,
    split_by_name,
)
from parley import db

CATEGORIES = 6  # scores 0..5
EDITS = ("word_errors", "word_count", "char_errors", "char_count")
WIDTH = len(SCORE_FIELDS) * CATEGORIES + len(EDITS) + 2
MARGIN = dt.timedelta(seconds=10)  # saves that committed late are re-read
_BATCH = 2000
_lock = threading.Lock()


_COLUMNS = ("turn", "pipeline", "annotations", "last_update", "numbers")


def _query() -> peewee.ModelSelect[Any]:
    a = Annotation
    columns = [a.turn, a.pipeline, a.updated_at, *(getattr(a, f) for f in SCORE_FIELDS)]
    return a.select(*columns, *(getattr(a, e) for e in EDITS)).order_by(a.turn)


def _vector(turn_id: str, rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One turn's row of the cache from its annotations' raw rows."""
    numbers = np.zeros(WIDTH, dtype="<i4")
    first_edit = 3 + len(SCORE_FIELDS)
    for row in rows:
        for j, score in enumerate(row[3:first_edit]):
            if isinstance(score, int) and 0 <= score < CATEGORIES:
                numbers[j * CATEGORIES + score] += 1
        if row[first_edit + 1] is not None:  # a corrected transcript with a reference
            numbers[-6:-2] += [int(e or 0) for e in row[first_edit:]]
            numbers[-2] += 1
    numbers[-1] = len(rows)
    return (turn_id, rows[0][1], len(rows), max(row[2] for row in rows), numbers.tobytes())


def _vectors(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Cache rows from annotation rows sorted by turn."""
    for turn_id, group in itertools.groupby(rows, key=itemgetter(0)):
        yield _vector(turn_id, list(group))


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
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        vectors = list(_vectors(raw_rows(_query().where(Annotation.turn.in_(chunk)))))
        with db.database.atomic():
            ScoreVector.delete().where(ScoreVector.turn.in_(chunk)).execute()
            _write(vectors)
    return len(ids)


def _rebuild() -> int:
    """Every turn's row, from one ordered scan of the annotations."""
    ScoreVector.delete().execute()
    cursor = db.database.execute(_query())
    rows = itertools.chain.from_iterable(iter(lambda: cursor.fetchmany(_BATCH), []))
    return _write(_vectors(rows))


def _changed(turn_ids: set[str]) -> list[str]:
    """Those of ``turn_ids`` whose cached row differs from their annotations."""
    if not turn_ids:
        return []
    fresh = {v[0]: v for v in _vectors(raw_rows(_query().where(Annotation.turn.in_(turn_ids))))}
    v = ScoreVector
    stored = raw_rows(v.select(v.turn, v.annotations, v.numbers).where(v.turn.in_(turn_ids)))
    same = {
        t
        for t, n, numbers in stored
        if t in fresh and (n, bytes(numbers)) == (fresh[t][2], fresh[t][4])
    }
    return sorted(turn_ids - same)


def sync() -> int:
    """Bring the cache up to date; return how many turns were recounted (writing only
    what changed, so reading pages never writes)."""
    with _lock, db.database.connection_context():
        newest = ScoreVector.select(peewee.fn.MAX(ScoreVector.last_update)).scalar()
        sample = raw_rows(ScoreVector.select(ScoreVector.numbers).limit(1))
        if newest is None or len(bytes(sample[0][0])) != WIDTH * 4:  # empty, or another layout
            return _rebuild()
        a = Annotation
        recent = a.select(a.turn).where(a.updated_at >= newest - MARGIN)  # no DISTINCT: it
        done = refresh(_changed({t for (t,) in raw_rows(recent)}))  # would skip the index
        counted = ScoreVector.select(peewee.fn.SUM(ScoreVector.annotations)).scalar() or 0
        if counted != a.select().count():  # deleted or back-dated annotations: start over
            done = _rebuild()
        return done


def load(pipelines: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """``{pipeline: numbers}``: one row of WIDTH counts per annotated turn."""
    v = ScoreVector
    query = v.select(v.pipeline, v.numbers)
    wanted = list(pipelines)
    if wanted:
        query = query.where(v.pipeline.in_(wanted))
    with db.database.connection_context():
        rows = db.database.execute(query).fetchall()
    return split_by_name(rows, "<i4", WIDTH)


def score_counts(numbers: np.ndarray, field: str) -> np.ndarray:
    """(turns x 6): how many annotators gave each score to ``field`` on each turn."""
    j = SCORE_FIELDS.index(field)
    return numbers[:, j * CATEGORIES : (j + 1) * CATEGORIES]


def edit_sums(numbers: np.ndarray) -> tuple[int, int, int, int, int]:
    """Summed (word errors, words, char errors, chars, corrected annotations)."""
    we, wc, ce, cc, n = (int(x) for x in numbers[:, -6:-1].sum(axis=0))
    return we, wc, ce, cc, n


def annotation_count(numbers: np.ndarray) -> int:
    return int(numbers[:, -1].sum())
