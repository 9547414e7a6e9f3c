"""Compare runs item by item: the data behind `parley compare` and the admin's Compare
page, as plain JSON-ready data (:func:`compare`).

Runs are compared on the same dataset (any versions of one name: items pair up by their
key). All figures cover the items selected (all, or those with a tag):

- per run: items done / failed / not replayed; corpus WER and CER against the items'
  reference transcripts (errors / reference length over the items that have one, jiwer
  counts with admin/transcripts.py's normalisation); latency percentiles (nearest rank,
  ms) of voice-to-voice (edge clock; real-time pace only), endpointing, VAD decision ->
  first audio sent and the whole answer, and per stage its total, **model** time
  (inside the worker) and **transfer** time (everything else: gRPC, queueing,
  serialisation; the latency record's ``*_overhead_ms``); annotation score means;
- per other run against the first (the baseline), for the items both runs did: the
  difference of means / error rates (second minus first) with a 95 % bootstrap interval
  (research/stats.py), and how many items each run did better on and how many tied;
- per pair of runs that annotators judged blind (admin/pairwise.py): how often each
  answer was preferred and how often they tied, and the share of the first run among
  the decided ones with Wilson's 95 % interval;
- one row per item: key, tags, references, and per run its status, error, transcript,
  answer, WER, latency, turn ids and trace id (for links to turns, traces and audio),
  and the item's preference counts.

Items whose turn was annotated carry the annotators' scores (research/admin_tables.py).
The runs are read from the store by research/compare_runs.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from admin.models import raw_rows
from parley import db
from research import admin_tables
from research.compare_runs import (
    LATENCY,
    CompareError,
    ItemIndex,
    RunFigures,
    add_scores,
    compared_rows,
    find_runs,
    load_run,
)
from research.stats import FloatArray, percentiles, ratio_differences_ci, wilson_interval

STAGE_ORDER = ("stt", "llm", "tts", "send")  # stages found in the records come in this order
# Paired metrics: (name, lower is better, tie tolerance in the metric's unit or None).
PAIRED = (
    ("voice_to_voice_ms", True, "latency"),
    ("first_audio_ms", True, "latency"),
    ("wer", True, "exact"),
    ("cer", True, "exact"),
    ("overall_score", False, "exact"),
)
STATUS = {1: "done", 0: "failed", -1: "not replayed"}
_FEW_ROWS = 500  # item rows read by id; more: read each run whole
CHOICES = ("a", "tie", "b")


def _ratio(num: float, den: float) -> float | None:
    return None if not den else round(num / den, 6)


def _summary(run: RunFigures) -> dict[str, Any]:
    done = run.status == 1
    edits = run.edits[done & ~np.isnan(run.edits[:, 1])]
    stages = [s[: -len("_model_ms")] for s in run.latency if s.endswith("_model_ms")]
    stages.sort(key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER), s))
    return {
        "run": run.row.name,
        "pipeline": run.row.pipeline,
        "items": len(run.status),
        "done": int(done.sum()),
        "failed": int((run.status == 0).sum()),
        "not_replayed": int((run.status == -1).sum()),
        "reference_items": len(edits),
        "wer": _ratio(float(edits[:, 0].sum()), float(edits[:, 1].sum())),
        "cer": _ratio(float(edits[:, 2].sum()), float(edits[:, 3].sum())),
        "latency": {name: percentiles(run.value(name)[done]) for name, _ in LATENCY},
        "stages": [
            {
                "stage": stage,
                "total": percentiles(run.value(f"{stage}_ms")[done]),
                "model": percentiles(run.value(f"{stage}_model_ms")[done]),
                "transfer": percentiles(run.value(f"{stage}_overhead_ms")[done]),
            }
            for stage in stages
        ],
        "scores": {
            score: {
                "mean": _ratio(float(total[done].sum()), float(count[done].sum())),
                "count": int(count[done].sum()),
            }
            for score, (total, count) in run.scores.items()
        },
    }


def _metric(run: RunFigures, name: str) -> tuple[FloatArray, FloatArray]:
    """(numerator, denominator) per row; NaN denominators where there is no value."""
    if name in ("wer", "cer"):
        column = 0 if name == "wer" else 2
        return run.edits[:, column], np.where(
            run.edits[:, column + 1] > 0, run.edits[:, column + 1], np.nan
        )
    if name == "overall_score":
        total, count = run.scores.get(name, (np.zeros(len(run.status)), np.zeros(len(run.status))))
        return total, np.where(count > 0, count, np.nan)
    values = run.value(name)
    return values, np.where(np.isnan(values), np.nan, 1.0)


def _paired(
    base: RunFigures, others: Sequence[RunFigures], *, tie_ms: float, resamples: int, seed: int
) -> list[dict[str, Any]]:
    columns: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]] = []
    partial: list[dict[str, Any]] = []
    for other in others:
        both = (base.status == 1) & (other.status == 1)
        for name, lower_better, tie in PAIRED:
            na, da = _metric(base, name)
            nb, db_ = _metric(other, name)
            valid = both & ~np.isnan(da) & ~np.isnan(db_) & ~np.isnan(na) & ~np.isnan(nb)
            zero = np.zeros(len(valid))
            cols = tuple(np.where(valid, x, zero) for x in (na, da, nb, db_))
            columns.append(cols)  # type: ignore[arg-type]
            per_a, per_b = na[valid] / da[valid], nb[valid] / db_[valid]
            diff = per_b - per_a
            tolerance = tie_ms if tie == "latency" else 1e-9
            better_b = diff < -tolerance if lower_better else diff > tolerance
            better_a = diff > tolerance if lower_better else diff < -tolerance
            sum_a, sum_b = cols[0].sum(), cols[2].sum()
            mean_a = _ratio(float(sum_a), float(cols[1].sum()))
            mean_b = _ratio(float(sum_b), float(cols[3].sum()))
            partial.append(
                {
                    "a": base.row.name,
                    "b": other.row.name,
                    "metric": name,
                    "better": "lower" if lower_better else "higher",
                    "n": int(valid.sum()),
                    "mean_a": mean_a,
                    "mean_b": mean_b,
                    "difference": None
                    if mean_a is None or mean_b is None
                    else round(mean_b - mean_a, 6),
                    "a_better": int(better_a.sum()),
                    "ties": int(valid.sum() - better_a.sum() - better_b.sum()),
                    "b_better": int(better_b.sum()),
                }
            )
    intervals = ratio_differences_ci(columns, resamples=resamples, seed=seed)
    for entry, (low, high) in zip(partial, intervals, strict=True):
        entry["ci95"] = None if math.isnan(low) else [round(low, 6), round(high, 6)]
    return partial


@dataclass
class _Preferences:
    """One judged pair: per compared row, how many said a, tie, b (rows x 3)."""

    a: str
    b: str
    counts: np.ndarray

    def figures(self, at: np.ndarray | slice = slice(None)) -> dict[str, Any]:
        a_better, ties, b_better = (int(x) for x in self.counts[at].sum(axis=0))
        decided = a_better + b_better
        interval = wilson_interval(a_better, decided)
        return {
            "a": self.a,
            "b": self.b,
            "n": a_better + ties + b_better,
            "a_better": a_better,
            "ties": ties,
            "b_better": b_better,
            "a_share": _ratio(a_better, decided),
            "a_share_ci95": None if interval is None else [round(x, 6) for x in interval],
        }


def _preferences(data: Sequence[RunFigures], indexes: dict[int, ItemIndex]) -> list[_Preferences]:
    """The judged pairs among the compared runs, each oriented in the order the runs
    were given (a: the earlier one), counted per compared row (the tag's items only)."""
    rows = admin_tables.preferences([d.row.id for d in data])
    if not rows:
        return []
    place = {d.row.id: n for n, d in enumerate(data)}
    dataset_of = {d.row.id: d.dataset.id for d in data}
    size = len(data[0].status)
    found: dict[tuple[int, int], np.ndarray] = {}
    table = np.array([(a, b, item, CHOICES.index(c)) for a, b, item, c in rows], dtype=np.int64)
    for run_a, run_b in {(int(a), int(b)) for a, b in table[:, :2]}:
        part = table[(table[:, 0] == run_a) & (table[:, 1] == run_b)]
        at = indexes[dataset_of[run_a]].rows_of(part[:, 2])
        choice = part[:, 3]
        first, second = sorted((run_a, run_b), key=place.__getitem__)
        if first != run_a:  # judged as (b, a): "a" meant the later run
            choice = 2 - choice
        counts = found.setdefault((first, second), np.zeros((size, 3), dtype=np.int64))
        kept = at >= 0
        np.add.at(counts, (at[kept], choice[kept]), 1)
    return [
        _Preferences(data[place[a]].row.name, data[place[b]].row.name, counts)
        for (a, b), counts in sorted(found.items(), key=lambda x: (place[x[0][0]], place[x[0][1]]))
    ]


def _numbers(values: FloatArray, digits: int = 3) -> list[float | None]:
    """Rounded values as Python numbers, None for NaN."""
    return [None if v != v else v for v in np.round(values, digits).tolist()]


def _item_columns(run: RunFigures, at: np.ndarray) -> dict[str, list[Any]]:
    """A run's per-item figures for the rows ``at``, as lists (one entry per row)."""
    edits = run.edits[at]
    total, count = run.scores["overall_score"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "status": [STATUS[s] for s in run.status[at].tolist()],
            "word_errors": _numbers(edits[:, 0], 0),
            "word_count": _numbers(edits[:, 1], 0),
            "wer": _numbers(np.where(edits[:, 1] > 0, edits[:, 0] / edits[:, 1], np.nan), 6),
            "cer": _numbers(np.where(edits[:, 3] > 0, edits[:, 2] / edits[:, 3], np.nan), 6),
            "voice_to_voice_ms": _numbers(run.value("voice_to_voice_ms")[at]),
            "first_audio_ms": _numbers(run.value("first_audio_ms")[at]),
            "overall_score": _numbers(np.where(count[at] > 0, total[at] / count[at], np.nan)),
        }


def _item_rows(
    rows: Sequence[tuple[Any, ...]],
    data: Sequence[RunFigures],
    start: int,
    stop: int,
    judged: Sequence[_Preferences] = (),
) -> list[dict[str, Any]]:
    """The per-item table for rows ``start:stop`` (texts read for those rows only)."""
    wanted = range(start, min(stop, len(rows)))
    few = len(wanted) <= _FEW_ROWS  # else read whole runs: no long IN lists
    i, r = db.DatasetItem, db.RunItem
    query = i.select(i.id, i.reference_transcript, i.reference_answer)
    if few:
        query = query.where(i.id.in_([rows[n][0] for n in wanted]))
    else:
        query = query.where(i.dataset.in_(list({d.dataset.id for d in data})))
    references = {item_id: (text, answer) for item_id, text, answer in raw_rows(query)}
    at = np.arange(wanted.start, wanted.stop, dtype=np.int64)
    columns = []
    for run in data:
        texts = r.select(
            r.item, r.error, r.turn, r.turn_ids, r.trace_id, r.transcript, r.response
        ).where(r.run == run.row.id)
        if few:
            texts = texts.where(r.item.in_([int(run.item_ids[n]) for n in wanted]))
        found = {item_id: rest for item_id, *rest in raw_rows(texts)}
        figures = _item_columns(run, at)
        missing = ("", None, "[]", "", "", "")
        per_item = [found.get(item_id, missing) for item_id in run.item_ids[at].tolist()]
        # The turn id lists, parsed in one go (a JSON array of them).
        figures["turn_ids"] = json.loads("[" + ",".join(p[2] or "[]" for p in per_item) + "]")
        columns.append((run.row.name, figures, per_item))
    out = []
    for j, n in enumerate(wanted):
        item_id, key, position, tags, conversation, conversation_position = rows[n]
        reference, answer = references.get(item_id, ("", ""))
        per_run = {}
        for name, figures, per_item in columns:
            error, turn, _, trace, transcript, response = per_item[j]
            got = {field: values[j] for field, values in figures.items()}
            got.update(
                error=error, turn_id=turn, trace_id=trace, transcript=transcript, response=response
            )
            per_run[name] = got
        out.append(
            {
                "key": key,
                "position": position,
                "tags": tags,
                "conversation": conversation,
                "conversation_position": conversation_position,
                "reference_transcript": reference,
                "reference_answer": answer,
                "runs": per_run,
                "preferences": [
                    {k: v for k, v in p.figures(slice(n, n + 1)).items() if "share" not in k}
                    for p in judged
                    if p.counts[n].any()
                ],
            }
        )
    return out


def compare(
    run_refs: Sequence[str | int],
    *,
    tag: str = "",
    item_offset: int = 0,
    item_limit: int | None = None,
    resamples: int = 1000,
    tie_ms: float = 10.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare runs (names, ``#ID``, or ints as ids; a plain number is a run's name when
    one has it, else an id; the first is the baseline) on the items with ``tag``
    (all items if ""). ``item_offset``/``item_limit`` choose the per-item rows returned
    (None: all); every figure still covers all selected items. ``tie_ms``: latency
    differences within it count as ties. Raises CompareError (unknown run, runs of
    different datasets, a tag no item has). The database must be open."""
    if item_offset < 0 or (item_limit is not None and item_limit < 0):
        raise CompareError("item_offset and item_limit cannot be negative")
    if not run_refs:
        raise CompareError("name at least one run")
    found = find_runs(run_refs)
    datasets: dict[int, db.Dataset] = {}
    for run in found:
        datasets.setdefault(run.dataset_id, db.Dataset.get_by_id(run.dataset_id))
    names = {d.name for d in datasets.values()}
    if len(names) > 1:
        raise CompareError(
            f"these runs replayed different datasets ({', '.join(sorted(names))}): "
            "only runs of one dataset can be compared item by item"
        )
    rows, indexes, tags = compared_rows(list(datasets.values()), tag)
    if tag and tag not in tags:
        known = ", ".join(tags[:20]) + (", ..." if len(tags) > 20 else "") if tags else "none"
        shown = tag if len(tag) <= 80 else tag[:77] + "..."
        raise CompareError(
            f"no item of dataset {next(iter(names))} has the tag {shown!r} (its tags: {known})"
        )
    data = [
        load_run(run, datasets[run.dataset_id], indexes[run.dataset_id], len(rows)) for run in found
    ]
    add_scores(data, indexes)
    judged = _preferences(data, indexes)
    stop = len(rows) if item_limit is None else item_offset + item_limit
    return {
        "dataset": next(iter(names)),
        "runs": [
            {
                "name": d.row.name,
                "id": d.row.id,
                "pipeline": d.row.pipeline,
                "dataset_version": d.dataset.version,
                "pace": d.row.pace,
                "git_revision": d.row.git_revision,
                "started_at": str(d.row.started_at),
                "finished_at": str(d.row.finished_at) if d.row.finished_at else None,
                "config": d.row.config,
            }
            for d in data
        ],
        "tag": tag,
        "tags": tags,
        "items_total": len(rows),
        "summary": [_summary(d) for d in data],
        "paired": _paired(data[0], data[1:], tie_ms=tie_ms, resamples=resamples, seed=seed),
        "preferences": [p.figures() for p in judged],
        "item_offset": item_offset,
        "items": _item_rows(rows, data, item_offset, stop, judged),
    }
