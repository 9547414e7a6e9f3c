"""The accuracy benchmark: every question's figures per pipeline (scores per stage and
the configured questions), STT error rates against the confirmed or edited transcripts,
agreement between annotators, and the multi-turn groups.

Blind rating: annotators see none of it unless an admin allows it (admin/settings.py).
"""

from __future__ import annotations

import math
from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from flask_admin import expose

from admin import accuracy, auth, filters, schema, settings
from admin.charts import Segment, grouped_bars
from admin.filters import TurnFilters
from admin.views.base import SiteView

BUILTIN_CSS = {"stt_score", "llm_score", "tts_score", "overall_score"}


def _clean(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _question_json(f: accuracy.QuestionFigures) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": f.question.kind,
        "rated": f.rated,
        "na": f.na,
        "mean": _clean(f.mean),
        "distribution": f.distribution,
        "alpha": _clean(f.alpha),
        "alpha_level": f.question.level if f.question.agreement else None,
    }
    if f.question.bind:
        out["accuracy"] = _clean(f.accuracy)
        out["confusion"] = {
            "stored": list(f.stored_labels),
            "answered": list(f.question.values),
            "counts": f.confusion,
        }
    return out


class AccuracyView(SiteView):
    def _summary(self) -> tuple[TurnFilters, dict[str, accuracy.PipelineAccuracy]]:
        """The pipeline, run and dataset filters (the turn list's), and the figures."""
        parsed = TurnFilters.parse(request.args)
        chosen = TurnFilters(pipeline=parsed.pipeline, run=parsed.run, dataset=parsed.dataset)
        pipelines = [chosen.pipeline] if chosen.pipeline else []
        return chosen, accuracy.summarise(pipelines, chosen.replayed_turns())

    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        if not settings.sees_results(me):
            return self.render("parley/blind.html")
        chosen, results = self._summary()
        questions = [q for q in schema.current().counted]
        means = [q for q in questions if q.kind in ("ordinal", "boolean")]
        chart_rows = [
            (
                name,
                [
                    Segment(
                        q.label,
                        r.questions[q.key].mean,
                        f"s-{q.key}" if q.key in BUILTIN_CSS else "s-extra",
                    )
                    for q in means
                    if q.kind == "ordinal" and q.column and not math.isnan(r.questions[q.key].mean)
                ],
            )
            for name, r in results.items()
        ]
        return self.render(
            "parley/accuracy.html",
            filters=chosen,
            pipelines=filters.pipelines(),
            runs=filters.runs(),
            datasets=filters.datasets(),
            results=results,
            overall=accuracy.overall(results),
            builtins=[q for q in questions if q.column],
            extra=[q for q in questions if not q.column],
            chart=grouped_bars(chart_rows, top=5.0, unit=" / 5") if chart_rows else "",
            groups=accuracy.group_summary(),
            show_results=settings.get(settings.SHOW_RESULTS),
        )

    @expose("/summary.json")
    def summary_json(self) -> Any:
        me = auth.user()
        if not settings.sees_results(me):
            return jsonify(
                {"error": "blind rating: an admin has not let annotators see results"}
            ), 403
        chosen, results = self._summary()
        groups = accuracy.group_summary(limit=0)
        return jsonify(
            {
                "pipeline": chosen.pipeline or None,
                "filters": chosen.args(),
                "pipelines": {
                    name: {
                        "annotations": r.annotations,
                        "turns": r.turns,
                        "mean": {k: _clean(v) for k, v in r.means.items()},
                        "rated": r.counts,
                        "wer": _clean(r.wer),
                        "cer": _clean(r.cer),
                        "corrected": r.wer_turns,
                        "alpha": {k: _clean(v) for k, v in r.alpha.items()},
                        "questions": {k: _question_json(f) for k, f in r.questions.items()},
                    }
                    for name, r in results.items()
                },
                "groups": {
                    "groups": groups.groups,
                    "rated_groups": groups.rated_groups,
                    "ratings": groups.ratings,
                    "mean_score": _clean(groups.mean_score),
                    "alpha": _clean(groups.alpha),
                },
            }
        )

    @expose("/visibility", methods=["POST"])
    @auth.admin_required
    def visibility(self) -> Any:
        """Let annotators see the results, or hide them again (blind rating)."""
        show = request.form.get("show") == "yes"
        settings.put(settings.SHOW_RESULTS, show)
        flash(
            "Annotators now see the results." if show else "Results are hidden from annotators.",
            "success",
        )
        return redirect(url_for(".index"))
