"""The turn queue: the next finished turn a user has not annotated yet among the turns a
filter selects, in time order (so annotators overlap on the same turns, which agreement
needs), optionally only turns that still lack ``target`` ratings; and progress.

"Annotated" means a live (not deleted) annotation that is done (admin/annotating.py):
an incomplete or deleted one sends the turn back to the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from admin.filters import TurnFilters
from admin.models import Annotation, User, raw_rows
from parley import db

QUEUE_STATUS = "done"


def counted() -> peewee.Expression:
    """Annotations that count as work done: live and complete."""
    return Annotation.live() & (Annotation.done == True)  # noqa: E712


def _finished(filters: TurnFilters, user_id: int) -> peewee.ModelSelect[db.Turn]:
    t = db.Turn
    return filters.apply(t.select().where(t.status == QUEUE_STATUS), user_id)


def ratings(turn: peewee.Field) -> peewee.ModelSelect[Annotation]:
    """A subquery: how many counted annotations the turn ``turn`` has."""
    a = Annotation
    return a.select(peewee.fn.COUNT(a.id)).where((a.turn == turn) & counted())


def _open(user_id: int, filters: TurnFilters, target: int | None) -> peewee.ModelSelect[db.Turn]:
    """Finished turns of the filter that ``user_id`` has not annotated (and, with a
    target, that have fewer than ``target`` ratings)."""
    t, a = db.Turn, Annotation
    mine = a.select(a.id).where((a.turn == t.id) & (a.user == user_id) & counted())
    query = _finished(filters, user_id).where(~peewee.fn.EXISTS(mine))
    return query.where(ratings(t.id) < target) if target else query


def _after(query: peewee.ModelSelect[db.Turn], turn: db.Turn) -> peewee.ModelSelect[db.Turn]:
    t = db.Turn
    return query.where(
        (t.created_at > turn.created_at) | ((t.created_at == turn.created_at) & (t.id > turn.id))
    )


def _last_saved(user_id: int, filters: TurnFilters) -> db.Turn | None:
    a = Annotation
    query = a.select(a.turn).where((a.user == user_id) & a.live())
    if filters.pipeline:
        query = query.where(a.pipeline == filters.pipeline)
    latest = query.order_by(a.updated_at.desc()).limit(1).scalar()
    return None if latest is None else db.Turn.get_or_none(db.Turn.id == latest)


def next_turn(
    user_id: int, filters: TurnFilters | None = None, after: str = "", target: int | None = None
) -> db.Turn | None:
    """The next turn ``user_id`` has not annotated among ``filters``' finished turns, in
    time order: after ``after`` (a turn being skipped), else after the turn the user
    annotated last (carry on where they left off), wrapping round to the oldest turn
    when nothing is left after it."""
    t = db.Turn
    filters = filters or TurnFilters()
    query = _open(user_id, filters, target).order_by(t.created_at, t.id)
    start = t.get_or_none(t.id == after) if after else _last_saved(user_id, filters)
    if start is not None:
        found: db.Turn | None = _after(query, start).first()
        if found is not None or after:
            return found
    return query.first()


@dataclass(frozen=True)
class Progress:
    done: int  # of the selected finished turns, those the user has annotated
    total: int  # the selected finished turns
    left_for_target: int | None = None  # turns still short of the queue's target

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


def progress(
    user_id: int, filters: TurnFilters | None = None, target: int | None = None
) -> Progress:
    """The user's progress over ``filters``' finished turns (all of them by default)."""
    filters = filters or TurnFilters()
    a, t = Annotation, db.Turn
    total = _finished(filters, user_id).count()
    if filters.args().keys() <= {"pipeline"}:  # the fast path: the index alone, less the
        mine = a.select().where((a.user == user_id) & counted())  # few unfinished turns
        if filters.pipeline:
            mine = mine.where(a.pipeline == filters.pipeline)
        unfinished = t.select(t.id).where(t.status != QUEUE_STATUS)
        done = mine.count() - mine.where(a.turn.in_(unfinished)).count()
    else:
        theirs = a.select(a.id).where((a.turn == t.id) & (a.user == user_id) & counted())
        done = _finished(filters, user_id).where(peewee.fn.EXISTS(theirs)).count()
    short = None
    if target:
        short = _finished(filters, user_id).where(ratings(t.id) < target).count()
    return Progress(done=done, total=total, left_for_target=short)


@dataclass(frozen=True)
class AnnotatorRow:
    name: str
    role: str
    annotations: int
    per_pipeline: dict[str, int]
    last: object
    mean_overall: float | None


def annotators() -> list[AnnotatorRow]:
    """Every user's counted annotations (per pipeline), last activity, mean overall."""
    a = Annotation
    per: dict[int, dict[str, int]] = {}
    query = (
        a.select(a.user, a.pipeline, peewee.fn.COUNT(a.id))
        .where(counted())
        .group_by(a.user, a.pipeline)
    )
    for user_id, pipeline, count in raw_rows(query):
        per.setdefault(user_id, {})[pipeline] = count
    stats = {
        user_id: (last, mean)
        for user_id, last, mean in raw_rows(
            a.select(a.user, peewee.fn.MAX(a.updated_at), peewee.fn.AVG(a.overall_score))
            .where(counted())
            .group_by(a.user)
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
    """How many finished turns have 0, 1, 2, ... counted annotations: {annotations: turns}."""
    a, t = Annotation, db.Turn
    per_turn = (
        a.select(a.turn, peewee.fn.COUNT(a.id).alias("n"))
        .join(t, on=a.turn == t.id)
        .where(counted() & (t.status == QUEUE_STATUS))
        .group_by(a.turn)
    )
    n = peewee.SQL("n")
    query = peewee.Select([per_turn.alias("per_turn")], [n, peewee.fn.COUNT(peewee.SQL("*"))])
    counts = {int(k): int(c) for k, c in raw_rows(query.group_by(n))}
    total = t.select().where(t.status == QUEUE_STATUS).count()
    counts[0] = max(0, total - sum(counts.values()))
    return dict(sorted(counts.items()))
