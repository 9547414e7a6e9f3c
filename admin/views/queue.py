"""The annotation queue (the turn page for the next turn to do) and the progress page."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from flask_admin import expose

from admin import auth, filters, queue
from admin.views.base import SiteView
from admin.views.turns import turn_context


class QueueView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        pipeline = request.args.get("pipeline", "").strip()[:200]
        after = request.args.get("after", "").strip()[:64]
        turn = queue.next_turn(me.id, pipeline, after)
        mine = queue.progress(me.id, pipeline)
        state = {
            "pipeline": pipeline,
            "pipelines": filters.pipelines(),
            "progress": mine,
            "skip_url": "",
        }
        if turn is None:
            return self.render("parley/queue_done.html", queue=state, skipped=bool(after))
        args: dict[str, Any] = {"after": turn.id, **({"pipeline": pipeline} if pipeline else {})}
        state["skip_url"] = url_for("queue.index", **args)
        return self.render("parley/turn.html", queue=state, **turn_context(turn, me))


class ProgressView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        rows = queue.annotators()
        if not me.is_admin:  # annotators see their own row only
            rows = [r for r in rows if r.name == me.name]
        names = filters.pipelines()
        return self.render(
            "parley/progress.html",
            rows=rows,
            pipelines=names,
            totals={name: queue.progress(me.id, name).total for name in names},
            mine={name: queue.progress(me.id, name) for name in names},
            coverage=queue.coverage(),
        )
