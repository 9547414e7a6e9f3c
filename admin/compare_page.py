"""What the Compare page shows (admin/views/compare.py): the runs to choose from, and
research/compare.py's figures as tables and server-side charts: latency per run and
stage (model against transfer), error rates, score means, paired differences with
their bootstrap intervals, the blind A/B preferences with Wilson intervals, and one
page of item rows with each answer's audio."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import peewee
from markupsafe import Markup

from admin.charts import Interval, Segment, grouped_bars, intervals, percentile_bars, stacked_bars
from admin.models import raw_rows
from parley import db

PAGE_ROWS = 50  # item rows per page
MAX_RUNS = 8  # runs compared at once
LATENCY = (  # (figure in the summary, label)
    ("voice_to_voice_ms", "voice-to-voice (edge clock)"),
    ("endpointing_ms", "end of speech → VAD decision"),
    ("first_audio_ms", "VAD decision → first audio sent"),
    ("turn_total_ms", "VAD decision → turn finished"),
)
STAGES = {
    "stt": "speech-to-text",
    "llm": "LLM to first sentence",
    "tts": "TTS to first audio",
    "send": "send first audio",
    "speech_llm": "speech LLM to first output",
    "retrieve": "retrieve",
    "analyse": "analyse",
    "caption": "caption",
}
SCORES = (
    ("stt_score", "STT"),
    ("llm_score", "LLM"),
    ("tts_score", "TTS"),
    ("overall_score", "overall"),
)
# Paired metrics: (label, unit, scale for display, chart group).
PAIRED = {
    "voice_to_voice_ms": ("voice-to-voice", " ms", 1.0, "latency"),
    "first_audio_ms": ("first audio sent", " ms", 1.0, "latency"),
    "wer": ("WER", " pp", 100.0, "errors"),
    "cer": ("CER", " pp", 100.0, "errors"),
    "overall_score": ("overall score", "", 1.0, "scores"),
}


@dataclass(frozen=True)
class RunChoice:
    """A run on the chooser: what it is and how far its replay got."""

    id: int
    name: str
    pipeline: str
    dataset: str
    version: int
    pace: str
    started_at: Any
    done: int
    failed: int
    items: int  # the items of its dataset version


def choices() -> dict[str, list[RunChoice]]:
    """Every run, by dataset name (newest runs first)."""
    r, d, ri, di = db.Run, db.Dataset, db.RunItem, db.DatasetItem
    counts: dict[int, dict[str, int]] = {}
    for run_id, status, n in raw_rows(
        ri.select(ri.run, ri.status, peewee.fn.COUNT(ri.id)).group_by(ri.run, ri.status)
    ):
        counts.setdefault(run_id, {})[status] = n
    sizes = dict(raw_rows(di.select(di.dataset, peewee.fn.COUNT(di.id)).group_by(di.dataset)))
    query = (
        r.select(r.id, r.name, r.pipeline, d.name, d.version, r.pace, r.started_at, d.id)
        .join(d, on=(r.dataset == d.id))
        .order_by(d.name, r.started_at.desc(), r.id.desc())
    )
    out: dict[str, list[RunChoice]] = {}
    for run_id, name, pipeline, dataset, version, pace, started, dataset_id in raw_rows(query):
        done = counts.get(run_id, {})
        out.setdefault(dataset, []).append(
            RunChoice(
                run_id,
                name,
                pipeline,
                dataset,
                version,
                pace,
                started,
                done.get("done", 0),
                done.get("failed", 0),
                int(sizes.get(dataset_id, 0)),
            )
        )
    return out


def _stat(figures: Mapping[str, Any], key: str) -> float:
    value = figures.get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def latency_rows(summary: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the latency table: each figure (and each stage with its model and
    transfer parts) with every run's percentiles."""
    rows: list[dict[str, Any]] = [
        {"key": key, "label": label, "indent": 0, "cells": [s["latency"][key] for s in summary]}
        for key, label in LATENCY
    ]
    stages = list(dict.fromkeys(st["stage"] for s in summary for st in s["stages"]))
    for stage in stages:
        found = [next((st for st in s["stages"] if st["stage"] == stage), None) for s in summary]
        for part, label, indent in (
            ("total", STAGES.get(stage, stage), 0),
            ("model", "model", 1),
            ("transfer", "transfer + queue", 1),
        ):
            cells = [f[part] if f else {"n": 0} for f in found]
            rows.append(
                {"key": f"{stage}.{part}", "label": label, "indent": indent, "cells": cells}
            )
    return [row for row in rows if any(c.get("n") for c in row["cells"])]


def _spread(summary: Sequence[Mapping[str, Any]], key: str) -> Markup | str:
    figures = [(s["run"], s["latency"][key]) for s in summary]
    if not any(f.get("n") for _, f in figures):
        return ""
    return percentile_bars(
        [(name, _stat(f, "p50"), _stat(f, "p90"), _stat(f, "p99")) for name, f in figures]
    )


def _breakdown(summary: Sequence[Mapping[str, Any]]) -> Markup | str:
    rows = []
    for s in summary:
        segments = []
        for st in s["stages"]:
            for part, prefix, word in (("model", "m", "model"), ("transfer", "o", "transfer")):
                mean = _stat(st[part], "mean")
                if not math.isnan(mean) and (st["stage"] != "send" or part == "transfer"):
                    css = f"{prefix}-{st['stage']}"
                    segments.append(Segment(f"{st['stage'].upper()} {word}", mean, css))
        if segments:
            rows.append((str(s["run"]), segments))
    return stacked_bars(rows) if rows else ""


def _scores(summary: Sequence[Mapping[str, Any]]) -> Markup | str:
    rows = [
        (
            str(s["run"]),
            [
                Segment(label, float(s["scores"][key]["mean"]), f"s-{key}")
                for key, label in SCORES
                if s["scores"][key]["mean"] is not None
            ],
        )
        for s in summary
    ]
    rows = [row for row in rows if row[1]]
    return grouped_bars(rows, top=5.0, unit=" / 5") if rows else ""


def _interval(entry: Mapping[str, Any], label: str) -> Interval:
    ci = entry.get("ci95") or [math.nan, math.nan]
    estimate = entry.get("difference")
    return Interval(label, math.nan if estimate is None else float(estimate), *map(float, ci))


def paired_charts(paired: Sequence[Mapping[str, Any]]) -> dict[str, Markup]:
    """One interval chart per kind of metric (latency in ms, error rates in percentage
    points, scores): every other run's difference from the baseline."""
    groups: dict[str, list[Interval]] = {}
    units: dict[str, tuple[str, float]] = {}
    for entry in paired:
        if not entry["n"] or entry["difference"] is None:
            continue
        label, unit, scale, group = PAIRED[entry["metric"]]
        groups.setdefault(group, []).append(_interval(entry, f"{label}: {entry['b']}"))
        units[group] = (unit, scale)
    return {
        group: intervals(rows, unit=units[group][0], scale=units[group][1])
        for group, rows in groups.items()
    }


def preference_chart(preferences: Sequence[Mapping[str, Any]]) -> Markup | str:
    """The share of decided preferences that went to the first run of each pair, with
    its Wilson interval, around an even split."""
    rows = [
        Interval(f"{p['a']} over {p['b']}", float(p["a_share"]), *map(float, p["a_share_ci95"]))
        for p in preferences
        if p["a_share"] is not None
    ]
    return intervals(rows, centre=0.5, unit=" %", scale=100.0) if rows else ""


def charts(result: Mapping[str, Any]) -> dict[str, Any]:
    summary = result["summary"]
    return {
        "v2v": _spread(summary, "voice_to_voice_ms"),
        "first_audio": _spread(summary, "first_audio_ms"),
        "breakdown": _breakdown(summary),
        "scores": _scores(summary),
        "paired": paired_charts(result["paired"]),
        "preferences": preference_chart(result["preferences"]),
    }


def answer_audio(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{turn id: relative path}`` of the stored answer audio of the rows' turns."""
    ids = [got["turn_id"] for row in items for got in row["runs"].values() if got["turn_id"]]
    if not ids:
        return {}
    m = db.Media
    query = m.select(m.turn, m.path).where(m.turn.in_(ids) & (m.kind == "output"))
    return {turn: path for turn, path in raw_rows(query)}


def paired_by_run(paired: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The paired rows grouped by the run compared with the baseline."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for entry in paired:
        out.setdefault(str(entry["b"]), []).append(entry)
    return out


def warnings(result: Mapping[str, Any]) -> list[str]:
    """What a reader should know before trusting the figures."""
    out = []
    if not result["items_total"]:
        tagged = f" with tag {result['tag']!r}" if result["tag"] else ""
        out.append(f"The dataset has no items{tagged}: there is nothing to compare.")
    for s in result["summary"]:
        if result["items_total"] and not s["done"] and not s["failed"]:
            out.append(
                f"Run {s['run']!r} has no results: it was never replayed (or its replay "
                "is still starting). Its figures are empty."
            )
        elif result["items_total"] and not s["done"]:
            out.append(f"Run {s['run']!r} has no item done: every item it tried failed.")
    return out
