"""Named annotation queues: a set of items, the annotators assigned to it, and how many
ratings each item should get (``target``). Each queue has a *kind* that knows its items:

- ``turns``: finished turns selected by the turn list's filters (admin/queue.py);
- ``groups``: multi-turn groups (the chosen ones, or all), one score per group;
- ``pairwise``: a blind A/B comparison of two replay runs' answers, item by item
  (admin/pairwise.py).

A kind is a :class:`Kind` in :data:`KINDS`: how to find a user's next item, their
progress, and how its filters are checked when a queue is made; the queue view picks
the page that shows an item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import peewee

from admin import pairwise, queue
from admin.filters import TurnFilters, row_or_none
from admin.models import GroupAnnotation, Queue, QueueMember, TurnGroup, User, raw_rows
from admin.queue import Progress

MAX_TARGET = 20


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # what its items are called
    next_item: Callable[[Queue, User, str], Any]  # (queue, user, after) -> item or None
    progress: Callable[[Queue, User], Progress]
    # checks and normalises the filters of a new queue (raises ValueError: what is wrong)
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def turn_filters(q: Queue) -> TurnFilters:
    return TurnFilters.parse(q.filters if isinstance(q.filters, dict) else {})


def _next_turn(q: Queue, user: User, after: str) -> Any:
    return queue.next_turn(user.id, turn_filters(q), after, q.target)


def _turn_progress(q: Queue, user: User) -> Progress:
    return queue.progress(user.id, turn_filters(q), q.target)


def _groups(q: Queue) -> peewee.ModelSelect[TurnGroup]:
    ids = (q.filters or {}).get("groups") if isinstance(q.filters, dict) else None
    query = TurnGroup.select()
    return query.where(TurnGroup.id.in_([int(i) for i in ids])) if ids else query


def _scored() -> peewee.Expression:
    ga = GroupAnnotation
    return ga.score.is_null(False) | (ga.not_applicable == True)  # noqa: E712


def _open_groups(q: Queue, user: User) -> peewee.ModelSelect[TurnGroup]:
    g, ga = TurnGroup, GroupAnnotation
    mine = ga.select(ga.id).where((ga.group == g.id) & (ga.user == user.id) & _scored())
    ratings = ga.select(peewee.fn.COUNT(ga.id)).where((ga.group == g.id) & _scored())
    return _groups(q).where(~peewee.fn.EXISTS(mine) & (ratings < q.target))


def _next_group(q: Queue, user: User, after: str) -> Any:
    g = TurnGroup
    query = _open_groups(q, user).order_by(g.created_at, g.id)
    skipped = row_or_none(g, after) if after else None
    if skipped is not None:
        return query.where(
            (g.created_at > skipped.created_at)
            | ((g.created_at == skipped.created_at) & (g.id > skipped.id))
        ).first()
    return query.first()


def _group_progress(q: Queue, user: User) -> Progress:
    g, ga = TurnGroup, GroupAnnotation
    total = _groups(q).count()
    mine = ga.select(ga.id).where((ga.group == g.id) & (ga.user == user.id) & _scored())
    done = _groups(q).where(peewee.fn.EXISTS(mine)).count()
    ratings = ga.select(peewee.fn.COUNT(ga.id)).where((ga.group == g.id) & _scored())
    short = _groups(q).where(ratings < q.target).count()
    return Progress(done=done, total=total, left_for_target=short)


KINDS: dict[str, Kind] = {
    "turns": Kind("turns", "turns", _next_turn, _turn_progress),
    "groups": Kind("groups", "groups", _next_group, _group_progress),
    pairwise.KIND: Kind(
        pairwise.KIND, "item pairs", pairwise.next_item, pairwise.progress, pairwise.check_filters
    ),
}


def kind(q: Queue) -> Kind:
    return KINDS.get(str(q.kind), KINDS["turns"])


def members(q: Queue) -> list[User]:
    return list(
        User.select().join(QueueMember).where(QueueMember.queue == q.id).order_by(User.name)
    )


def may_use(q: Queue, user: User) -> bool:
    """Admins use every queue; annotators the active ones they are assigned to."""
    if user.is_admin:
        return True
    assigned = QueueMember.select().where(
        (QueueMember.queue == q.id) & (QueueMember.user == user.id)
    )
    return bool(q.active) and assigned.exists()


def queues_for(user: User) -> list[Queue]:
    """The queues a user works on: assigned and active (admins: every queue)."""
    query = Queue.select().order_by(Queue.name)
    if user.is_admin:
        return list(query)
    mine = QueueMember.select(QueueMember.queue).where(QueueMember.user == user.id)
    return list(query.where(Queue.id.in_(mine) & (Queue.active == True)))  # noqa: E712


class QueueError(ValueError):
    pass


def save_queue(
    *,
    name: str,
    kind_name: str,
    filters: dict[str, Any],
    target: int,
    assignees: Iterable[int],
    description: str = "",
    created_by: User | None = None,
    existing: Queue | None = None,
) -> Queue:
    """Create (or change) a queue; QueueError says what is wrong."""
    name = name.strip()[:200]
    if not name:
        raise QueueError("a queue needs a name")
    if kind_name not in KINDS:
        raise QueueError(f"kind must be one of {', '.join(KINDS)}")
    if not 1 <= target <= MAX_TARGET:
        raise QueueError(f"the target is 1 to {MAX_TARGET} ratings per item")
    checker = KINDS[kind_name].check
    if checker is not None and existing is None:
        try:
            filters = checker(filters)
        except ValueError as exc:
            raise QueueError(str(exc)) from None
    clash = Queue.select().where(Queue.name == name)
    if existing is not None:
        clash = clash.where(Queue.id != existing.id)
    if clash.exists():
        raise QueueError(f"a queue named {name!r} exists")
    users = [u for (u,) in raw_rows(User.select(User.id).where(User.id.in_(list(assignees))))]
    q = existing or Queue(created_by=created_by.id if created_by else None)
    q.name, q.kind, q.filters, q.target = name, kind_name, filters, target
    q.description = description.strip()[:5000]
    q.save()
    QueueMember.delete().where(QueueMember.queue == q.id).execute()
    if users:
        QueueMember.insert_many([{"queue": q.id, "user": u} for u in users]).execute()
    return q
