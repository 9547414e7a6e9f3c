"""Admins' page of named queues: each queue's items, assignees, target and everyone's
progress; making (from the turn list or the groups page), changing and deleting them."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_admin import expose

from admin import auth, pairwise, queues
from admin.filters import TurnFilters, as_key, row_or_none
from admin.models import Queue, User
from admin.views.base import SiteView, confirm_page
from admin.views.queue import filter_text


def _described(q: Queue, kind: str) -> str:
    if kind == "turns":
        return filter_text(queues.turn_filters(q))
    return pairwise.describe(q) if kind == pairwise.KIND else ""


def _target(text: str | None) -> int:
    return int(text) if text and text.strip().isdigit() else 0


class QueuesView(SiteView):
    admin_only = True

    @expose("/")
    def index(self) -> Any:
        rows = []
        for q in Queue.select().order_by(Queue.name):
            kind = queues.kind(q)
            people = queues.members(q)
            rows.append(
                {
                    "queue": q,
                    "kind": kind,
                    "filters": _described(q, kind.name),
                    "groups": (q.filters or {}).get("groups", []),
                    "members": [(u, kind.progress(q, u)) for u in people],
                    "member_ids": {u.id for u in people},
                }
            )
        annotators = list(User.select().where(User.active == True).order_by(User.name))  # noqa: E712
        return self.render("parley/queues.html", rows=rows, annotators=annotators)

    @expose("/new", methods=["POST"])
    @auth.admin_required
    def create(self) -> Any:
        form = request.form
        kind = form.get("kind", "turns")
        if kind == "groups":
            filters: dict[str, Any] = {
                "groups": sorted({int(g) for g in form.getlist("group") if g.isdigit()})
            }
        elif kind == pairwise.KIND:
            runs = [as_key(form.get(name, "")) for name in ("run_a", "run_b")]
            filters = {"runs": [r for r in runs if r is not None], "tag": form.get("tag", "")}
        else:
            filters = TurnFilters.parse(form).args()
        try:
            q = queues.save_queue(
                name=form.get("name", ""),
                kind_name=kind,
                filters=filters,
                target=_target(form.get("target")),
                assignees=[int(u) for u in form.getlist("assignee") if u.isdigit()],
                description=form.get("description", ""),
                created_by=auth.user(),
            )
        except queues.QueueError as exc:
            flash(f"No queue made: {exc}.", "error")
            return redirect(request.referrer or url_for(".index"))
        flash(f"Queue {q.name!r} made.", "success")
        return redirect(url_for(".index"))

    @expose("/<int:queue_id>", methods=["POST"])
    @auth.admin_required
    def update(self, queue_id: int) -> Any:
        q = row_or_none(Queue, queue_id)
        if q is None:
            return redirect(url_for(".index"))
        form = request.form
        try:
            queues.save_queue(
                name=form.get("name", str(q.name)),
                kind_name=str(q.kind),
                filters=q.filters,
                target=_target(form.get("target")),
                assignees=[int(u) for u in form.getlist("assignee") if u.isdigit()],
                description=form.get("description", str(q.description)),
                existing=q,
            )
            q.active = form.get("active") == "on"
            q.save(only=[Queue.active])
        except queues.QueueError as exc:
            flash(f"Not changed: {exc}.", "error")
        else:
            flash(f"Queue {q.name!r} changed.", "success")
        return redirect(url_for(".index"))

    @expose("/<int:queue_id>/delete", methods=["GET", "POST"])
    @auth.admin_required
    def delete(self, queue_id: int) -> Any:
        q = row_or_none(Queue, queue_id)
        if q is None:
            return redirect(url_for(".index"))
        if request.method == "GET":
            return confirm_page(
                self,
                "Delete this queue?",
                f"Queue {q.name!r} goes; the annotations made through it stay.",
                url_for(".delete", queue_id=q.id),
                url_for(".index"),
                "Delete queue",
            )
        q.delete_instance(recursive=True)
        flash(f"Queue {q.name!r} deleted.", "success")
        return redirect(url_for(".index"))
