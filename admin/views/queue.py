"""The annotation queues (the turn or group page for the next item to do) and the
progress page.

``/queue/?<turn filters>``: every finished turn the filters select (the turn list's
"Annotate" keeps its whole filter). ``/queue/<id>/``: a named queue (admin/queues.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import abort, request, url_for
from flask_admin import expose

from admin import auth, filters, queue, queues, schema, settings
from admin.filters import TurnFilters, row_or_404
from admin.groups import group_context
from admin.models import Annotation, Queue, User
from admin.queue import Progress
from admin.turn_page import turn_context
from admin.views.base import SiteView
from parley import db

ITEMS = {"turns": "turns", "groups": "groups"}


def filter_text(chosen: TurnFilters) -> str:
    return " · ".join(f"{k} {v}" for k, v in chosen.args().items())


def _state(
    me: User,
    *,
    title: str,
    progress: Progress,
    return_to: str,
    skip_url: str,
    items: str = "turns",
    target: int | None = None,
    filters_shown: str = "",
) -> dict[str, Any]:
    return {
        "title": title,
        "progress": progress,
        "return_to": return_to,
        "skip_url": skip_url,
        "item_name": items,
        "target": target,
        "filter_text": filters_shown,
        "others": queues.queues_for(me),
    }


def adhoc_state(me: User, chosen: TurnFilters, turn_id: str) -> dict[str, Any]:
    args = chosen.args()
    return _state(
        me,
        title="Queue",
        progress=queue.progress(me.id, chosen),
        return_to=url_for("queue.index", **args),
        skip_url=url_for("queue.index", after=turn_id, **args) if turn_id else "",
        filters_shown=filter_text(chosen),
    )


def named_state(me: User, q: Queue, item_id: str) -> dict[str, Any]:
    kind = queues.kind(q)
    return _state(
        me,
        title=f"Queue: {q.name}",
        progress=kind.progress(q, me),
        return_to=url_for("queue.named", queue_id=q.id),
        skip_url=url_for("queue.named", queue_id=q.id, after=item_id) if item_id else "",
        items=kind.label,
        target=int(q.target),
        filters_shown=filter_text(queues.turn_filters(q)) if kind.name == "turns" else "",
    )


def get_queue(queue_id: int, me: User) -> Queue:
    found = row_or_404(Queue, queue_id)
    if not queues.may_use(found, me):
        abort(403)
    return found


def queue_state_for(me: User, back: str, turn: db.Turn) -> dict[str, Any] | None:
    """The queue bar for a form sent back to ``back`` (a queue's address)."""
    parts = urlsplit(back)
    path = parts.path.strip("/").split("/")
    if len(path) == 2 and path[1].isdigit():
        return named_state(me, get_queue(int(path[1]), me), str(turn.id))
    return adhoc_state(me, TurnFilters.parse(dict(parse_qsl(parts.query))), str(turn.id))


class QueueView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        chosen = TurnFilters.parse(request.args)
        after = request.args.get("after", "").strip()[:64]
        turn = queue.next_turn(me.id, chosen, after)
        state = adhoc_state(me, chosen, turn.id if turn else "")
        if turn is None:
            return self.render(
                "parley/queue_done.html",
                queue=state,
                skipped=bool(after),
                restart=url_for("queue.index", **chosen.args()),
            )
        return self.render("parley/turn.html", queue=state, **turn_context(turn, me))

    @expose("/<int:queue_id>/")
    def named(self, queue_id: int) -> Any:
        me = auth.user()
        q = get_queue(queue_id, me)
        after = request.args.get("after", "").strip()[:64]
        item = queues.kind(q).next_item(q, me, after)
        state = named_state(me, q, str(item.id) if item is not None else "")
        if item is None:
            restart = url_for("queue.named", queue_id=q.id)
            return self.render(
                "parley/queue_done.html", queue=state, skipped=bool(after), restart=restart
            )
        if queues.kind(q).name == "groups":
            return self.render("parley/group.html", queue=state, **group_context(item, me))
        return self.render("parley/turn.html", queue=state, **turn_context(item, me))


class ProgressView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        rows = queue.annotators()
        if not me.is_admin:  # annotators see their own row only
            rows = [r for r in rows if r.name == me.name]
        names = filters.pipelines()
        mine = {name: queue.progress(me.id, TurnFilters(pipeline=name)) for name in names}
        return self.render(
            "parley/progress.html",
            rows=rows,
            pipelines=names,
            totals={name: mine[name].total for name in names},
            mine=mine,
            coverage=queue.coverage(),
            questions=question_counts(None if me.is_admin else me),
            named=[(q, queues.kind(q).progress(q, me)) for q in queues.queues_for(me)],
            show_results=settings.sees_results(me),
        )


def question_counts(user: User | None) -> list[dict[str, Any]]:
    """Per configured question: how many live annotations answered it and said n/a (one
    user's, or everyone's). The JSON columns are searched as text for the key (keys
    are plain identifiers, stored as ``"key":`` and ``"key"``; cast, so the pattern is
    not taken for JSON), so nothing is parsed."""
    a = Annotation
    base = a.select().where(a.live())
    if user is not None:
        base = base.where(a.user == user.id)
    return [
        {
            "question": q,
            "answered": base.where(a.answers.cast("TEXT").contains(f'"{q.key}":')).count(),
            "na": base.where(a.not_applicable.cast("TEXT").contains(f'"{q.key}"')).count(),
        }
        for q in schema.current().extra
    ]
