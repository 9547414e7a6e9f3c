"""The annotation queues (the turn or group page for the next item to do) and the
progress page.

``/queue/?<turn filters>``: every finished turn the filters select (the turn list's
"Annotate" keeps its whole filter). ``/queue/<id>/``: a named queue (admin/queues.py);
a pairwise one shows item pairs blind (admin/pairwise.py), saves preferences at
``/queue/<id>/pair/<item>`` and serves their audio by side (``.../A``, ``.../B``,
``.../request``), so no address names a run or a turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_admin import expose

from admin import auth, filters, pairwise, queue, queues, schema, settings
from admin.filters import TurnFilters, row_or_404
from admin.groups import group_context
from admin.models import Annotation, Queue, User
from admin.queue import Progress
from admin.turn_page import turn_context
from admin.views.base import SiteView
from admin.views.media import resolve
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
        filters_shown=_queue_text(q, kind.name),
    )


def _queue_text(q: Queue, kind: str) -> str:
    if kind == "turns":
        return filter_text(queues.turn_filters(q))
    return pairwise.blind_text(q) if kind == pairwise.KIND else ""


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
        if queues.kind(q).name == pairwise.KIND:
            return self.render("parley/pairwise.html", queue=state, **_pair_page(q, item, me))
        return self.render("parley/turn.html", queue=state, **turn_context(item, me))

    @expose("/<int:queue_id>/pair/<int:item_id>", methods=["POST"])
    def prefer(self, queue_id: int, item_id: int) -> Any:
        """Save which answer of an item pair the annotator preferred, then the next."""
        me = auth.user()
        q = get_queue(queue_id, me)
        pair, item = _pair_item(q, item_id)
        try:
            pairwise.save(
                q,
                pair,
                item,
                me,
                request.form.get("choice", ""),
                request.form.get("comment", ""),
                _secret(),
            )
        except pairwise.PairError as exc:  # the same item again, saying what is missing
            flash(f"Not saved: {exc}.", "error")
            state = named_state(me, q, str(item.id))
            return self.render("parley/pairwise.html", queue=state, **_pair_page(q, item, me)), 400
        return redirect(url_for("queue.named", queue_id=q.id))

    @expose("/<int:queue_id>/pair/<int:item_id>/<side>")
    def pair_audio(self, queue_id: int, item_id: int, side: str) -> Any:
        """The request's recording or answer A's or B's audio, without naming the run."""
        me = auth.user()
        q = get_queue(queue_id, me)
        pair, item = _pair_item(q, item_id)
        data_dir = Path(current_app.config["PARLEY_DATA_DIR"])
        if side == "request":
            path, mime = pairwise.request_audio(item, data_dir), "audio/wav"
        elif side in pairwise.SIDES:
            media = pairwise.answer_media(pairwise.side_results(pair, item, me.id, _secret())[side])
            path = None if media is None else resolve(data_dir, str(media.path))
            mime = "audio/wav" if media is None else str(media.mime)
        else:
            abort(404)
        if path is None or not path.is_file():
            abort(404)
        response = send_file(path, mimetype=mime, conditional=True, max_age=0)
        response.headers["Cache-Control"] = "private, no-cache"
        return response


def _secret() -> str:
    return str(current_app.config["SECRET_KEY"])


def _pair_item(q: Queue, item_id: int) -> tuple[pairwise.Pair, db.DatasetItem]:
    """The queue's pair and one of its items, or a 404."""
    pair = pairwise.pair_of(q) if queues.kind(q).name == pairwise.KIND else None
    item = row_or_404(db.DatasetItem, item_id)
    if pair is None or not pairwise.in_pair(pair, item):
        abort(404)
    return pair, item


def _pair_page(q: Queue, item: db.DatasetItem, me: User) -> dict[str, Any]:
    """What the blind A/B page shows: the request, then answers A and B (no run, no
    pipeline, no turn id), and the annotator's earlier choice."""
    pair = pairwise.pair_of(q)
    assert pair is not None  # next_item found an item
    secret = _secret()
    sides = pairwise.side_results(pair, item, me.id, secret)
    data_dir = Path(current_app.config["PARLEY_DATA_DIR"])

    def audio(side: str, present: bool) -> str:
        return (
            url_for("queue.pair_audio", queue_id=q.id, item_id=item.id, side=side)
            if present
            else ""
        )

    return {
        "item": item,
        "request_audio": audio("request", pairwise.request_audio(item, data_dir) is not None),
        "answers": [
            {
                "side": side,
                "heard": result.transcript if result else "",
                "response": result.response if result else "",
                "audio": audio(side, pairwise.answer_media(result) is not None),
            }
            for side, result in sides.items()
        ],
        "chosen": pairwise.screen_choice(
            pairwise.mine(pair, item, me.id), pairwise.swapped(secret, me.id, pair, item.id)
        ),
        "action": url_for("queue.prefer", queue_id=q.id, item_id=item.id),
    }


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
