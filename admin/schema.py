"""The annotation schema: every question an annotator answers about a turn.

The four built-in scores (0-5 per stage: STT, LLM, TTS, overall; stored in the
annotation's own columns) come first, each followed by the configured questions about
that stage (``[annotation.questions.*]``, parley/config_annotation.py; stored in
``Annotation.answers``); questions about other stages, or none, follow. Every question
of a turn can be answered or marked n/a; a *required* one must be, before the
annotation counts as done.

The site installs one schema at start (:func:`install`, from the config); the form, the
score cache, the accuracy page, the exports and the progress counts all read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley.config_annotation import BUILTIN_STAGES, AnnotationConfig, QuestionConfig

RUBRIC_0_5 = ("unusable", "bad", "poor", "acceptable", "good", "perfect")
BUILTIN_HELP = {
    "stt": "heard right?",
    "llm": "good answer?",
    "tts": "spoken well?",
    "overall": "the whole turn",
}
NA = "na"  # what the form sends for "n/a"


@dataclass(frozen=True)
class Question:
    """One question of the form (a built-in score or a configured question)."""

    key: str  # form field and export column
    label: str
    kind: str  # ordinal | categorical | boolean | text
    help: str = ""
    stage: str = ""
    pipelines: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # the answers counted, in order (ordinal: "0".."5")
    rubric: tuple[str, ...] = ()  # ordinal: one text per value
    multiple: bool = False
    bind: str = ""
    required: bool = True
    column: str = ""  # built-in scores: the Annotation column

    @classmethod
    def from_config(cls, q: QuestionConfig) -> Question:
        return cls(
            key=q.key,
            label=q.label,
            kind=q.kind,
            help=q.help,
            stage=q.stage,
            pipelines=q.pipelines,
            values=q.values,
            rubric=q.rubric,
            multiple=q.multiple,
            bind=q.bind,
            required=q.required,
        )

    @property
    def counted(self) -> bool:
        """Answers that are counted (means, distributions, agreement): not free text."""
        return self.kind != "text"

    @property
    def level(self) -> str:
        """Krippendorff's level of measurement: ordered values or labels."""
        return "ordinal" if self.kind == "ordinal" else "nominal"

    @property
    def agreement(self) -> bool:
        """Whether alpha is defined: one value per annotator (not multi-label)."""
        return self.counted and not self.multiple

    def stored(self, outputs: Mapping[str, Any] | None) -> str | None:
        """The bound value the turn stored (``bind`` path into ``Turn.outputs``)."""
        if not self.bind:
            return None
        value: Any = outputs or {}
        for part in self.bind.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return None if value is None or isinstance(value, Mapping | list) else str(value)

    def applies(self, pipeline: str, outputs: Mapping[str, Any] | None) -> bool:
        """Whether a turn of ``pipeline`` with these stage outputs gets this question."""
        if self.pipelines and pipeline not in self.pipelines:
            return False
        if self.stage and self.stage not in BUILTIN_STAGES and self.stage not in (outputs or {}):
            return False
        return not self.bind or self.stored(outputs) is not None

    def value_index(self, value: Any) -> int | None:
        """Position of a stored answer in ``values`` (None: not a counted value)."""
        if self.kind == "boolean" and isinstance(value, bool):
            return int(value)
        text = str(value)
        return self.values.index(text) if text in self.values else None


def _builtin(stage: str) -> Question:
    return Question(
        key=f"{stage}_score",
        label="Overall" if stage == "overall" else stage.upper(),
        kind="ordinal",
        help=BUILTIN_HELP[stage],
        stage=stage,
        values=tuple(str(v) for v in range(6)),
        rubric=RUBRIC_0_5,
        column=f"{stage}_score",
    )


BUILTINS = tuple(_builtin(stage) for stage in BUILTIN_STAGES)


@dataclass(frozen=True)
class Schema:
    questions: tuple[Question, ...]  # in form order
    context_turns: int = 3

    @classmethod
    def from_config(cls, config: AnnotationConfig) -> Schema:
        extra = [Question.from_config(q) for q in config.questions]
        ordered: list[Question] = []
        for builtin in BUILTINS:
            ordered.append(builtin)
            ordered += [q for q in extra if q.stage == builtin.stage]
        ordered += [q for q in extra if q.stage not in BUILTIN_STAGES]
        return cls(tuple(ordered), config.context_turns)

    @property
    def extra(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if not q.column)

    @property
    def counted(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.counted)

    def get(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def for_turn(self, pipeline: str, outputs: Mapping[str, Any] | None) -> list[Question]:
        return [q for q in self.questions if q.applies(pipeline, outputs)]

    @property
    def layout(self) -> str:
        """A digest of the counted questions: the score cache is rebuilt when it changes."""
        parts = [(q.key, q.kind, q.values, q.multiple, q.bind) for q in self.counted]
        return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


_current = Schema.from_config(AnnotationConfig())


def install(config: AnnotationConfig) -> Schema:
    """Make the schema of ``config`` the site's (create_app does it)."""
    global _current
    _current = Schema.from_config(config)
    return _current


def current() -> Schema:
    return _current


def answer_of(question: Question, scores: Sequence[Any], answers: Mapping[str, Any]) -> Any:
    """An annotation's answer to ``question`` (None: none). ``scores``: its built-in
    score columns in BUILTINS order; a bound question's answer is its ``value``."""
    if question.column:
        return scores[[b.key for b in BUILTINS].index(question.key)]
    answer = answers.get(question.key) if isinstance(answers, Mapping) else None
    if question.bind and isinstance(answer, Mapping):
        return answer.get("value")
    return answer
