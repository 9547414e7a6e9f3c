"""A turn's stored spans as a waterfall (with the end of speech and the VAD's decision
marked), with a link to Jaeger when one is configured."""

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
        marks = timeline.speech_marks(spans)
        origin = min((s.start_ns for s in spans), default=0)
        speech_end = next((m.at for m in marks if m.css == "mark-speech"), None)
        jaeger = current_app.config.get("PARLEY_JAEGER_URL", "")
        trace_ids = sorted({s.trace_id for s in spans} | ({turn.trace_id} - {""}))
        return self.render(
            "parley/trace.html",
            turn=turn,
            spans=spans,
            total=timeline.span_count(turn),
            origin=origin,
            speech_end=speech_end,
            chart=waterfall(timeline.span_bars(spans), marks=marks),
            jaeger_links=[(t, f"{jaeger}/trace/{t}") for t in trace_ids] if jaeger else [],
            trace_ids=trace_ids,
        )
