"""A turn's stored spans as a waterfall, with a link to Jaeger when one is configured."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, url_for
from flask_admin import expose

from admin import timeline
from admin.charts import waterfall
from admin.views.base import SiteView
from admin.views.turns import get_turn


class TraceView(SiteView):
    in_menu = False

    @expose("/")
    def index(self) -> Any:
        return redirect(url_for("turns.index"))

    @expose("/<turn_id>")
    def detail(self, turn_id: str) -> Any:
        turn = get_turn(turn_id)
        spans = timeline.trace_spans(turn)
        jaeger = current_app.config.get("PARLEY_JAEGER_URL", "")
        trace_ids = sorted({s.trace_id for s in spans} | ({turn.trace_id} - {""}))
        return self.render(
            "parley/trace.html",
            turn=turn,
            spans=spans,
            origin=min((s.start_ns for s in spans), default=0),
            chart=waterfall(timeline.span_bars(spans)),
            jaeger_links=[(t, f"{jaeger}/trace/{t}") for t in trace_ids] if jaeger else [],
            trace_ids=trace_ids,
        )
