"""The annotation queue: the next finished turn a user has not annotated yet, in time
order (so annotators overlap on the same turns, which agreement needs), and progress."""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from admin.models import Annotation, User, raw_rows
from parley import db

QUEUE_STATUS = "done"


def _unannotated(user_id: int, pipeline: str) -> peewee.ModelSelect[db.Turn]:
    t = db.Turn
    mine = Annotation.select(Annotation.id).where(
        (Annotation.turn == t.id) & (Annotation.user == user_id)
    )
    query = t.select().where((t.status == QUEUE_STATUS) & ~peewee.fn.EXISTS(mine))
    return query.where(t.pipeline == pipeline) if pipeline else query


def _after(query: peewee.ModelSelect[db.Turn], turn: db.Turn) -> peewee.ModelSelect[db.Turn]:
    t = db.Turn
    return query.where(
        (t.created_at > turn.created_at) | ((t.created_at == turn.created_at) & (t.id > turn.id))
    )


def _last_saved(user_id: int, pipeline: str) -> db.Turn | None:
    a = Annotation
    query = a.select(a.turn).where(a.user == user_id)
    if pipeline:
        query = query.where(a.pipeline == pipeline)
    latest = query.order_by(a.updated_at.desc()).limit(1).scalar()
    return None if latest is None else db.Turn.get_or_none(db.Turn.id == latest)


def next_turn(user_id: int, pipeline: str = "", after: str = "") -> db.Turn | None:
    """The next turn ``user_id`` has not annotated, in time order: after ``after`` (a
    turn being skipped), else after the turn the user annotated last (carry on where
    they left off), wrapping round to the oldest turn when nothing is left after it."""
    t = db.Turn
    query = _unannotated(user_id, pipeline).order_by(t.created_at, t.id)
    start = t.get_or_none(t.id == after) if after else _last_saved(user_id, pipeline)
    if start is not None:
        found: db.Turn | None = _after(query, start).first()
        if found is not None or after:
            return found
    return query.first()


@dataclass(frozen=True)
class Progress:
    done: int  # turns of this pipeline (or all) the user has annotated
    total: int  # finished turns of this pipeline (or all)

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


def progress(user_id: int, pipeline: str = "") -> Progress:
    a, t = Annotation, db.Turn
    mine = a.select().where(a.user == user_id)
    turns = t.select().where(t.status == QUEUE_STATUS)
    if pipeline:
        mine, turns = mine.where(a.pipeline == pipeline), turns.where(t.pipeline == pipeline)
    return Progress(done=mine.count(), total=turns.count())


@dataclass(frozen=True)
class AnnotatorRow:
    name: str
    role: str
    annotations: int
    per_pipeline: dict[str, int]
    last: object
    mean_overall: float | None


def annotators() -> list[AnnotatorRow]:
    """Every user's annotation count (per pipeline), last activity and mean overall."""
    a = Annotation
    per: dict[int, dict[str, int]] = {}
    query = a.select(a.user, a.pipeline, peewee.fn.COUNT(a.id)).group_by(a.user, a.pipeline)
    for user_id, pipeline, count in raw_rows(query):
        per.setdefault(user_id, {})[pipeline] = count
    stats = {
        user_id: (last, mean)
        for user_id, last, mean in raw_rows(
            a.select(a.user, peewee.fn.MAX(a.updated_at), peewee.fn.AVG(a.overall_score)).group_by(
                a.user
            )
        )
    }
    rows = []
    for user in User.select().order_by(User.name):
        counts = per.get(user.id, {})
        last, mean = stats.get(user.id, (None, None))
        rows.append(
            AnnotatorRow(
                str(user.name),
                str(user.role),
                sum(counts.values()),
                counts,
                last,
                None if mean is None else float(mean),
            )
        )
    return rows


def coverage() -> dict[int, int]:
    """How many finished turns have 0, 1, 2, ... annotations: {annotations: turns}."""
    sql = (
        "SELECT n, COUNT(*) FROM (SELECT turn_id, COUNT(*) AS n FROM admin_annotation "
        "GROUP BY turn_id) AS per_turn GROUP BY n"
    )
    counts = {int(n): int(c) for n, c in db.database.execute_sql(sql).fetchall()}
    total = db.Turn.select().where(db.Turn.status == QUEUE_STATUS).count()
    counts[0] = max(0, total - sum(counts.values()))
    return dict(sorted(counts.items()))
