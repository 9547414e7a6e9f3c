"""Latency summaries: count, mean and nearest-rank percentiles per pipeline and metric.

Percentiles are nearest-rank (the smallest value with at least p % of the values at or
below it), the definition `parley bench turn` uses, so figures from the bench and from
the admin agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from admin.latency_cache import METRICS

PERCENTILES = (50, 90, 99)
ALL = "all pipelines"

# What the benchmark page shows, in order: (metric, label, indent level).
ROWS: tuple[tuple[str, str, int], ...] = (
    ("endpointing_ms", "end of speech → VAD decision (audio time)", 0),
    ("stt_ms", "speech-to-text", 0),
    ("stt_model_ms", "model", 1),
    ("stt_overhead_ms", "transfer + queue", 1),
    ("llm_ms", "LLM to first sentence", 0),
    ("llm_model_ms", "model", 1),
    ("llm_overhead_ms", "transfer + queue", 1),
    ("llm_first_token_ms", "VAD decision → first token", 1),
    ("tts_ms", "TTS to first audio", 0),
    ("tts_model_ms", "model", 1),
    ("tts_overhead_ms", "transfer + queue", 1),
    ("speech_llm_ms", "speech LLM to first output", 0),
    ("speech_llm_model_ms", "model", 1),
    ("speech_llm_overhead_ms", "transfer + queue", 1),
    ("retrieve_ms", "retrieve (from its inputs)", 0),
    ("retrieve_model_ms", "model", 1),
    ("retrieve_overhead_ms", "transfer + queue", 1),
    ("analyse_ms", "analyse (from its inputs)", 0),
    ("analyse_model_ms", "model", 1),
    ("analyse_overhead_ms", "transfer + queue", 1),
    ("caption_ms", "caption (from its inputs)", 0),
    ("caption_model_ms", "model", 1),
    ("caption_overhead_ms", "transfer + queue", 1),
    ("send_ms", "send first audio", 0),
    ("overhead_ms", "framework overhead (all stages)", 0),
    ("first_audio_sent_ms", "VAD decision → first audio sent", 0),
    ("voice_to_voice_ms", "voice-to-voice (edge clock)", 0),
    ("turn_total_ms", "VAD decision → turn finished", 0),
)


@dataclass(frozen=True)
class Stats:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean": self.mean,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
        }


EMPTY = Stats(0, math.nan, math.nan, math.nan, math.nan)


def _summarise(values: np.ndarray) -> dict[str, Stats]:
    """Stats of every column of ``values`` (NaN = missing); O(n) per column."""
    out = {}
    columns = np.ascontiguousarray(values.T)  # one metric per row: contiguous scans
    for j, name in enumerate(METRICS):
        column = columns[j]
        present = column[~np.isnan(column)]
        n = present.size
        if n == 0:
            out[name] = EMPTY
            continue
        ranks = [max(0, math.ceil(p / 100 * n) - 1) for p in PERCENTILES]
        parted = np.partition(present, ranks)
        p50, p90, p99 = (float(parted[r]) for r in ranks)
        out[name] = Stats(n, float(present.sum()) / n, p50, p90, p99)
    return out


def summarise(tables: dict[str, np.ndarray]) -> dict[str, dict[str, Stats]]:
    """``{pipeline: {metric: Stats}}`` plus an ``ALL`` entry when there are several."""
    out = {name: _summarise(values) for name, values in sorted(tables.items())}
    if len(tables) > 1:
        out[ALL] = _summarise(np.concatenate(list(tables.values())))
    return out


def as_json(
    summary: dict[str, dict[str, Stats]],
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """The summary with NaN as None, for JSON."""

    def clean(value: float | int) -> float | int | None:
        return None if isinstance(value, float) and math.isnan(value) else value

    return {
        pipeline: {
            metric: {k: clean(v) for k, v in stats.as_dict().items()}
            for metric, stats in metrics.items()
            if stats.count
        }
        for pipeline, metrics in summary.items()
    }
