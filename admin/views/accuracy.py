"""The accuracy benchmark: scores per stage and pipeline, STT error rates against the
corrected transcripts, agreement between annotators, and the multi-turn groups."""

from __future__ import annotations

import math
from typing import Any

from flask import jsonify, request
from flask_admin import expose

from admin import accuracy, filters
from admin.charts import Segment, grouped_bars
from admin.models import SCORE_FIELDS
from admin.views.base import SiteView

LABELS = {"stt_score": "STT", "llm_score": "LLM", "tts_score": "TTS", "overall_score": "overall"}


def _clean(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


class AccuracyView(SiteView):
    def _summary(self) -> tuple[str, dict[str, accuracy.PipelineAccuracy]]:
        pipeline = request.args.get("pipeline", "").strip()[:200]
        return pipeline, accuracy.summarise([pipeline] if pipeline else [])

    @expose("/")
    def index(self) -> Any:
        pipeline, results = self._summary()
        chart_rows = [
            (
                name,
                [
                    Segment(LABELS[s], r.means[s], f"s-{s}")
                    for s in SCORE_FIELDS
                    if not math.isnan(r.means[s])
                ],
            )
            for name, r in results.items()
        ]
        return self.render(
            "parley/accuracy.html",
            pipeline=pipeline,
            pipelines=filters.pipelines(),
            results=results,
            scores=SCORE_FIELDS,
            labels=LABELS,
            chart=grouped_bars(chart_rows, top=5.0, unit=" / 5") if chart_rows else "",
            groups=accuracy.group_summary(),
        )

    @expose("/summary.json")
    def summary_json(self) -> Any:
        pipeline, results = self._summary()
        groups = accuracy.group_summary(limit=0)
        return jsonify(
            {
                "pipeline": pipeline or None,
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
