"""Exports: the turns (or their annotations) selected by the same filters as the turn
list, as CSV or JSON Lines, streamed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, abort, request, stream_with_context
from flask_admin import expose

from admin import auth, exporting, schema
from admin.filters import TurnFilters
from admin.views.base import SiteView
from parley import db

MIMES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


class ExportView(SiteView):
    in_menu = False

    @expose("/")
    def index(self) -> Any:
        abort(404)

    @expose("/<kind>.<fmt>")
    def download(self, kind: str, fmt: str) -> Any:
        if kind not in ("turns", "annotations") or fmt not in MIMES:
            abort(404)
        me = auth.user()
        turns = TurnFilters.parse(request.args).apply(db.Turn.select(), me.id)
        fields: tuple[str, ...]
        if kind == "turns":
            rows = exporting.turn_rows(turns)
            fields = exporting.TURN_FIELDS
        else:
            current = schema.current()
            rows = exporting.annotation_rows(turns, me, current)
            fields = exporting.ANNOTATION_FIELDS + exporting.question_fields(current)
        lines = (
            exporting.csv_lines(rows, fields, latency=kind == "turns")
            if fmt == "csv"
            else exporting.jsonl_lines(rows)
        )
        name = f"parley-{kind}-{dt.datetime.now():%Y%m%d-%H%M%S}.{fmt}"
        return Response(
            stream_with_context(lines),
            mimetype=MIMES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
