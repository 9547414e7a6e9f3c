"""The latency benchmark: per pipeline and stage, count, mean and percentiles; model
time against transfer/queue time; voice-to-voice; the slowest turns (each turn's page
has its waterfall)."""

from __future__ import annotations

import math
from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from flask_admin import expose

from admin import auth, filters, latency_cache, latency_stats
from admin.charts import Segment, percentile_bars, stacked_bars
from admin.filters import TurnFilters
from admin.views.base import SiteView

STATUS_CHOICES = ("done", "interrupted", "failed", "all")
BREAKDOWN = (  # (metric, legend, css)
    ("stt_model_ms", "STT model", "m-stt"),
    ("stt_overhead_ms", "STT transfer", "o-stt"),
    ("llm_model_ms", "LLM model", "m-llm"),
    ("llm_overhead_ms", "LLM transfer", "o-llm"),
    ("caption_model_ms", "caption model", "m-caption"),
    ("caption_overhead_ms", "caption transfer", "o-caption"),
    ("retrieve_model_ms", "retrieve model", "m-retrieve"),
    ("retrieve_overhead_ms", "retrieve transfer", "o-retrieve"),
    ("speech_llm_model_ms", "speech LLM model", "m-speech_llm"),
    ("speech_llm_overhead_ms", "speech LLM transfer", "o-speech_llm"),
    ("tts_model_ms", "TTS model", "m-tts"),
    ("tts_overhead_ms", "TTS transfer", "o-tts"),
    ("send_overhead_ms", "send", "o-send"),
)
SLOWEST = 10


def _selection() -> tuple[TurnFilters, str, latency_cache.Selection]:
    chosen = TurnFilters.parse(request.args)
    status = request.args.get("status", "done")
    status = status if status in STATUS_CHOICES else "done"
    start, end = chosen.datetimes()
    selection = latency_cache.Selection(
        pipelines=(chosen.pipeline,) if chosen.pipeline else (),
        device=chosen.device,
        statuses=() if status == "all" else (status,),
        date_from=start,
        date_to=end,
        run=chosen.run,
        dataset=chosen.dataset,
    )
    latency_cache.sync()
    return chosen, status, selection


class LatencyView(SiteView):
    @expose("/")
    def index(self) -> Any:
        chosen, status, selection = _selection()
        tables = latency_cache.load(selection)
        summary = latency_stats.summarise(tables)
        breakdown = [
            (
                name,
                [
                    Segment(label, stats[m].mean, css)
                    for m, label, css in BREAKDOWN
                    if not math.isnan(stats[m].mean)
                ],
            )
            for name, stats in summary.items()
        ]

        def spread(metric: str) -> Any:
            rows = [(n, s[metric].p50, s[metric].p90, s[metric].p99) for n, s in summary.items()]
            return percentile_bars(rows) if any(s[metric].count for s in summary.values()) else ""

        return self.render(
            "parley/latency.html",
            filters=chosen,
            status=status,
            statuses=STATUS_CHOICES,
            pipelines=filters.pipelines(),
            devices=filters.devices(),
            runs=filters.runs(),
            datasets=filters.datasets(),
            turns=sum(len(values) for values in tables.values()),
            summary=summary,
            rows=latency_stats.ROWS,
            breakdown_chart=stacked_bars(breakdown) if breakdown else "",
            v2v_chart=spread("voice_to_voice_ms"),
            first_audio_chart=spread("first_audio_sent_ms"),
            slowest=latency_cache.slowest(selection, SLOWEST),
        )

    @expose("/rebuild", methods=["POST"])
    @auth.admin_required
    def rebuild(self) -> Any:
        """Re-read every turn's latency record (after old turns were edited by hand)."""
        flash(f"Latency cache rebuilt from {latency_cache.rebuild()} turns.", "success")
        return redirect(url_for(".index"))

    @expose("/summary.json")
    def summary_json(self) -> Any:
        chosen, status, selection = _selection()
        tables = latency_cache.load(selection)
        return jsonify(
            {
                "filters": {**chosen.args(), "status": status},
                "turns": sum(len(values) for values in tables.values()),
                "pipelines": latency_stats.as_json(latency_stats.summarise(tables)),
            }
        )
