"""The accuracy benchmark: what annotators thought of each pipeline.

Per pipeline, for every counted question of the annotation schema (admin/schema.py: the
0-5 scores of each stage, then the configured questions): how many annotators answered
and said n/a, the mean (ordinal: the mean value; boolean: the share of "yes"), the
distribution of answers, inter-annotator agreement (Krippendorff's alpha, ordinal or
nominal by the question's kind; not for multi-label questions) and, for a question bound
to a stored value, how often the stored value was right and the confusion matrix (stored
value against the annotators' answer). Plus the STT's word and character error rates
against the confirmed or edited transcripts (corpus rates: total errors / total
reference length). All of it comes from the per-turn counts in admin/score_cache.py;
the multi-turn groups are aggregated in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import peewee

from admin import score_cache
from admin.agreement import alpha_from_coincidences, alpha_from_pairs, coincidences
from admin.models import GroupAnnotation, TurnGroup, TurnGroupMember
from admin.schema import Question
from admin.score_cache import Block, Layout
from parley import db

ALL = "all pipelines"
OTHER = "(other)"  # a stored value that is not one of the question's labels


@dataclass
class QuestionFigures:
    question: Question
    rated: int = 0  # annotations that answered (not n/a)
    na: int = 0  # annotations that said n/a
    mean: float = math.nan  # ordinal: mean value; boolean: share of yes
    distribution: dict[str, int] = field(default_factory=dict)  # value -> answers
    alpha: float = math.nan
    accuracy: float = math.nan  # bound: share of answers equal to the stored value
    confusion: list[list[int]] = field(default_factory=list)  # bound: [stored][answer]

    @property
    def stored_labels(self) -> tuple[str, ...]:
        return (*self.question.values, OTHER)


@dataclass
class PipelineAccuracy:
    pipeline: str
    annotations: int = 0
    turns: int = 0
    questions: dict[str, QuestionFigures] = field(default_factory=dict)
    wer: float = math.nan
    cer: float = math.nan
    wer_turns: int = 0  # annotations whose transcript is a reference (confirmed, edited)

    @property
    def means(self) -> dict[str, float]:
        return {k: f.mean for k, f in self.questions.items()}

    @property
    def counts(self) -> dict[str, int]:
        return {k: f.rated for k, f in self.questions.items()}

    @property
    def alpha(self) -> dict[str, float]:
        return {k: f.alpha for k, f in self.questions.items()}


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass
class _Counts:
    """What a pipeline's figures are made of; counts of disjoint turns add up."""

    annotations: int
    turns: int
    totals: dict[str, np.ndarray]  # key -> answers per value
    answered: dict[str, int]
    na: dict[str, int]
    coincidences: dict[str, np.ndarray]  # key -> coincidence matrix
    confusion: dict[str, np.ndarray]  # bound key -> (values + 1) x values
    edits: np.ndarray  # word errors, words, char errors, chars, references

    def __add__(self, other: _Counts) -> _Counts:
        def add(a: dict, b: dict) -> dict:  # type: ignore[type-arg]
            return {k: v + b[k] for k, v in a.items()}

        return _Counts(
            self.annotations + other.annotations,
            self.turns + other.turns,
            add(self.totals, other.totals),
            add(self.answered, other.answered),
            add(self.na, other.na),
            add(self.coincidences, other.coincidences),
            add(self.confusion, other.confusion),
            self.edits + other.edits,
        )

    def _question(self, question: Question) -> QuestionFigures:
        key = question.key
        totals = self.totals[key]
        result = QuestionFigures(question, self.answered[key], self.na[key])
        result.distribution = dict(zip(question.values, (int(v) for v in totals), strict=True))
        given = float(totals.sum())
        if question.kind == "ordinal":
            result.mean = _ratio(float(totals @ np.array(question.values, dtype=float)), given)
        elif question.kind == "boolean":
            result.mean = _ratio(float(totals[1]), given)
        if question.agreement:
            result.alpha = alpha_from_coincidences(self.coincidences[key], question.level)
        if question.bind:
            matrix = self.confusion[key]
            result.confusion = matrix.astype(int).tolist()
            result.accuracy = _ratio(float(np.trace(matrix[:-1])), float(matrix.sum()))
        return result

    def figures(self, name: str, layout: Layout) -> PipelineAccuracy:
        result = PipelineAccuracy(name, self.annotations, self.turns)
        for block in layout.blocks:
            result.questions[block.question.key] = self._question(block.question)
        we, wc, ce, cc, references = (int(x) for x in self.edits)
        result.wer, result.cer, result.wer_turns = _ratio(we, wc), _ratio(ce, cc), references
        return result


def _confusion(numbers: np.ndarray, block: Block, units: np.ndarray) -> np.ndarray:
    stored = numbers[:, block.stored]
    matrix = np.zeros((block.categories + 1, block.categories))
    known = stored >= 0
    np.add.at(matrix, stored[known], units[known])
    return matrix


def _counts(numbers: np.ndarray, layout: Layout) -> _Counts:
    totals, answered, na, matrices, confusion = {}, {}, {}, {}, {}
    for block in layout.blocks:
        key = block.question.key
        units = numbers[:, block.start : block.start + block.categories]
        totals[key] = units.sum(axis=0)
        answered[key] = int(numbers[:, block.answered].sum())
        na[key] = int(numbers[:, block.na].sum())
        matrices[key] = coincidences(units, block.categories)
        if block.question.bind:
            confusion[key] = _confusion(numbers, block, units)
    edits = np.array(score_cache.edit_sums(numbers), dtype=np.int64)
    return _Counts(
        score_cache.annotation_count(numbers),
        int(numbers.shape[0]),
        totals,
        answered,
        na,
        matrices,
        confusion,
        edits,
    )


def summarise(
    pipelines: Iterable[str] = (), turns: peewee.ModelSelect[Any] | None = None
) -> dict[str, PipelineAccuracy]:
    """``{pipeline: PipelineAccuracy}``, plus ``ALL`` when there are several; only the
    turns whose ids the subquery ``turns`` selects, if given (a run's, a dataset's)."""
    score_cache.sync()
    layout = score_cache.layout()
    loaded = score_cache.load(pipelines, turns)
    counts = {name: _counts(n, layout) for name, n in loaded.items()}
    results = {name: c.figures(name, layout) for name, c in counts.items()}
    if len(counts) > 1:  # a turn has one pipeline: the pipelines' counts simply add up
        parts = list(counts.values())
        results[ALL] = sum(parts[1:], parts[0]).figures(ALL, layout)
    return results


def overall(results: dict[str, PipelineAccuracy]) -> PipelineAccuracy | None:
    """The row that covers every pipeline shown (``ALL``, or the only one): the page's
    totals come from it, never from adding up the rows (``ALL`` is one of them)."""
    if ALL in results:
        return results[ALL]
    return next(iter(results.values()), None)


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
            alpha=alpha_from_pairs(ids, scores, 6),
            recent=list(recent) if limit else [],  # type: ignore[arg-type]
        )
