"""The accuracy benchmark: what annotators thought of each pipeline.

Per pipeline: the mean of each score (0-5), the STT's word and character error rates
against the corrected transcripts (corpus rates: total errors / total reference length),
and inter-annotator agreement (Krippendorff's alpha, ordinal) per score. All of it comes
from the per-turn counts in admin/score_cache.py; the multi-turn groups are aggregated
in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import peewee

from admin import score_cache
from admin.agreement import alpha_from_pairs, coincidences, ordinal_alpha_from_coincidences
from admin.models import SCORE_FIELDS, GroupAnnotation, TurnGroup, TurnGroupMember
from parley import db

ALL = "all pipelines"
CATEGORIES = score_cache.CATEGORIES
SCALE = np.arange(CATEGORIES)


@dataclass
class PipelineAccuracy:
    pipeline: str
    annotations: int = 0
    turns: int = 0
    means: dict[str, float] = field(default_factory=dict)  # score field -> mean
    counts: dict[str, int] = field(default_factory=dict)  # score field -> ratings
    wer: float = math.nan
    cer: float = math.nan
    wer_turns: int = 0  # annotations with a corrected transcript
    alpha: dict[str, float] = field(default_factory=dict)  # score field -> alpha


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass
class _Counts:
    """What a pipeline's figures are made of; counts of disjoint turns add up."""

    annotations: int
    turns: int
    totals: dict[str, np.ndarray]  # score field -> ratings per category
    coincidences: dict[str, np.ndarray]  # score field -> coincidence matrix
    edits: np.ndarray  # word errors, words, char errors, chars, corrected

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(
            self.annotations + other.annotations,
            self.turns + other.turns,
            {k: v + other.totals[k] for k, v in self.totals.items()},
            {k: v + other.coincidences[k] for k, v in self.coincidences.items()},
            self.edits + other.edits,
        )

    def figures(self, name: str) -> PipelineAccuracy:
        result = PipelineAccuracy(name, self.annotations, self.turns)
        for score in SCORE_FIELDS:
            rated = int(self.totals[score].sum())
            result.counts[score] = rated
            result.means[score] = float(self.totals[score] @ SCALE) / rated if rated else math.nan
            result.alpha[score] = ordinal_alpha_from_coincidences(self.coincidences[score])
        we, wc, ce, cc, corrected = (int(x) for x in self.edits)
        result.wer, result.cer, result.wer_turns = _ratio(we, wc), _ratio(ce, cc), corrected
        return result


def _counts(numbers: np.ndarray) -> _Counts:
    totals, matrices = {}, {}
    for score in SCORE_FIELDS:
        units = score_cache.score_counts(numbers, score)
        totals[score] = units.sum(axis=0)
        matrices[score] = coincidences(units, CATEGORIES)
    edits = np.array(score_cache.edit_sums(numbers), dtype=np.int64)
    return _Counts(
        score_cache.annotation_count(numbers), int(numbers.shape[0]), totals, matrices, edits
    )


def summarise(pipelines: Iterable[str] = ()) -> dict[str, PipelineAccuracy]:
    """``{pipeline: PipelineAccuracy}``, plus ``ALL`` when there are several."""
    score_cache.sync()
    counts = {name: _counts(numbers) for name, numbers in score_cache.load(pipelines).items()}
    results = {name: c.figures(name) for name, c in counts.items()}
    if len(counts) > 1:  # a turn has one pipeline: the pipelines' counts simply add up
        parts = list(counts.values())
        results[ALL] = sum(parts[1:], parts[0]).figures(ALL)
    return results


@dataclass(frozen=True)
class GroupSummary:
    groups: int
    rated_groups: int
    ratings: int
    mean_score: float
    alpha: float
    recent: list[dict[str, object]]  # the latest groups with their figures


def group_summary(limit: int = 20) -> GroupSummary:
    """Multi-turn groups: how many, how they were rated, agreement on their scores."""
    g, ga, m = TurnGroup, GroupAnnotation, TurnGroupMember
    with db.database.connection_context():
        groups = g.select().count()
        rated = ga.score.is_null(False)
        pairs = db.database.execute(ga.select(ga.group, ga.score).where(rated)).fetchall()
        ids = np.array([p[0] for p in pairs], dtype=np.int64)
        scores = np.array([p[1] for p in pairs], dtype=float)
        members = m.select(peewee.fn.COUNT(m.id)).where(m.group == g.id)
        mean = ga.select(peewee.fn.AVG(ga.score)).where((ga.group == g.id) & rated)
        raters = ga.select(peewee.fn.COUNT(ga.id)).where((ga.group == g.id) & rated)
        recent = (
            g.select(
                g.id, g.name, members.alias("turns"), mean.alias("mean"), raters.alias("raters")
            )
            .order_by(g.created_at.desc(), g.id.desc())
            .limit(limit)
            .dicts()
        )
        return GroupSummary(
            groups=groups,
            rated_groups=len(set(ids.tolist())),
            ratings=len(pairs),
            mean_score=float(scores.mean()) if len(pairs) else math.nan,
            alpha=alpha_from_pairs(ids, scores, CATEGORIES),
            recent=list(recent) if limit else [],  # type: ignore[arg-type]
        )
