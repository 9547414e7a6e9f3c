"""The ``[annotation]`` section: extra questions annotators answer about a turn, beside
the built-in 0-5 scores of each stage (the annotation schema, as configuration).

```toml
[annotation]
context_turns = 3                 # earlier turns of the conversation shown above a turn

[annotation.questions.emotion]    # the key: letters, digits and _ (it names export columns)
label = "Emotion"
kind = "categorical"              # ordinal | categorical | boolean | text
choices = ["neutral", "happy", "sad", "angry"]
stage = "emotion"                 # the stage it is about (see QuestionConfig.stage)
bind = "emotion.label"            # a value the turn stored: asked as "right? which?"
pipelines = ["local"]             # only these pipelines' turns (default: every pipeline)
```

Parsed by :func:`parse_annotation`; :class:`~parley.errors.ConfigError` names the
question and the setting at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.errors import ConfigError

KINDS = ("ordinal", "categorical", "boolean", "text")
BUILTIN_STAGES = ("stt", "llm", "tts", "overall")
# Keys the form and the exports already use for the built-in fields.
RESERVED = {
    "stt_score",
    "llm_score",
    "tts_score",
    "overall_score",
    "corrected_transcript",
    "transcript_state",
    "better_response",
    "comment",
    "csrf_token",
    "next",
}
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_CHOICES = 20
MAX_SCALE = 11  # values an ordinal question may have (0-10)


@dataclass(frozen=True)
class QuestionConfig:
    """One extra question.

    ``stage``: the stage the question is about. A built-in stage (``stt``, ``llm``,
    ``tts``, ``overall``) places it under that stage's score; any other stage name (a
    pipeline stage such as ``emotion``) also limits it to turns that recorded outputs
    of that stage (``Turn.outputs[stage]``). Empty: after the scores, on every turn.
    ``bind``: a dotted path into ``Turn.outputs`` (e.g. ``emotion.label``); the stored
    value is shown and the annotator picks the right label, which says at once whether
    the stored one was correct (accuracy, confusion matrix). Only for single-label
    categorical questions.
    """

    key: str
    label: str
    kind: str  # one of KINDS
    help: str = ""
    stage: str = ""
    pipelines: tuple[str, ...] = ()  # empty: every pipeline
    low: int = 0  # ordinal: lowest value
    high: int = 5  # ordinal: highest value
    rubric: tuple[str, ...] = ()  # ordinal: what each value means, lowest first
    choices: tuple[str, ...] = ()  # categorical labels
    multiple: bool = False  # categorical: several labels may apply
    bind: str = ""
    required: bool = True  # an answer (or an explicit n/a) before the annotation is done

    @property
    def values(self) -> tuple[str, ...]:
        """The answers a counted question can take, in order (ordinal values as text)."""
        if self.kind == "ordinal":
            return tuple(str(v) for v in range(self.low, self.high + 1))
        if self.kind == "boolean":
            return ("no", "yes")
        return self.choices


@dataclass(frozen=True)
class AnnotationConfig:
    context_turns: int = 3  # earlier turns of the conversation shown above the turn
    questions: tuple[QuestionConfig, ...] = field(default_factory=tuple)


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: {name} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _rubric(spec: Mapping[str, Any], low: int, high: int, where: str) -> tuple[str, ...]:
    raw = spec.get("rubric", [])
    if isinstance(raw, Mapping):  # { "0" = "...", "5" = "..." }: values may be left out
        texts = {}
        for value, text in raw.items():
            if not str(value).lstrip("-").isdigit() or not low <= int(value) <= high:
                raise ConfigError(f"{where}: rubric value {value!r} is not in {low}..{high}")
            texts[int(value)] = str(text)
        return tuple(texts.get(v, "") for v in range(low, high + 1))
    rubric = tuple(str(t) for t in raw) if isinstance(raw, list) else None
    if rubric is None or (rubric and len(rubric) != high - low + 1):
        raise ConfigError(
            f"{where}: rubric needs one text per value {low}..{high} ({high - low + 1}), "
            "or a table of value = text"
        )
    return rubric


def _question(key: str, spec: Any) -> QuestionConfig:
    where = f"[annotation.questions.{key}]"
    if not _KEY.match(key) or key in RESERVED:
        raise ConfigError(
            f"{where}: a question key is a lower-case letter then up to 39 letters, digits "
            f"or _, and not one of {', '.join(sorted(RESERVED))}"
        )
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a table")
    known = set(QuestionConfig.__dataclass_fields__) - {"key", "low", "high"} | {"scale"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    values: dict[str, Any] = {
        "key": key,
        "kind": kind,
        "label": str(spec.get("label") or key.replace("_", " ")),
        "help": str(spec.get("help", "")),
        "stage": str(spec.get("stage", "")),
        "pipelines": _strings(spec.get("pipelines", []), where, "pipelines"),
        "required": spec.get("required", kind != "text"),
        "multiple": spec.get("multiple", False),
        "bind": str(spec.get("bind", "")),
    }
    for flag in ("required", "multiple"):
        if not isinstance(values[flag], bool):
            raise ConfigError(f"{where}: {flag} must be true or false")
    if kind == "ordinal":
        scale = spec.get("scale", [0, 5])
        if (
            not isinstance(scale, list)
            or len(scale) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
            or not 1 <= scale[1] - scale[0] < MAX_SCALE
        ):
            raise ConfigError(f"{where}: scale must be [lowest, highest], 2 to 11 values")
        values["low"], values["high"] = scale
        values["rubric"] = _rubric(spec, scale[0], scale[1], where)
    elif "scale" in spec or "rubric" in spec:
        raise ConfigError(f"{where}: scale and rubric are for ordinal questions")
    if kind == "categorical":
        choices = _strings(spec.get("choices", []), where, "choices")
        if not 2 <= len(choices) <= MAX_CHOICES or len(set(choices)) != len(choices):
            raise ConfigError(f"{where}: choices needs 2 to {MAX_CHOICES} different labels")
        values["choices"] = choices
    elif "choices" in spec or values["multiple"]:
        raise ConfigError(f"{where}: choices and multiple are for categorical questions")
    if values["bind"]:
        if kind != "categorical" or values["multiple"]:
            raise ConfigError(f"{where}: bind works with single-label categorical questions")
        if not _PATH.match(values["bind"]):
            raise ConfigError(f"{where}: bind is a dotted path such as 'emotion.label'")
    return QuestionConfig(**values)


def parse_annotation(raw: Any) -> AnnotationConfig:
    """The ``[annotation]`` table (already merged from defaults and the user's file)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[annotation] must be a table")
    unknown = set(raw) - {"context_turns", "questions"}
    if unknown:
        raise ConfigError(f"[annotation]: unknown setting(s) {', '.join(sorted(unknown))}")
    context = raw.get("context_turns", AnnotationConfig.context_turns)
    if not isinstance(context, int) or isinstance(context, bool) or not 0 <= context <= 50:
        raise ConfigError("[annotation]: context_turns must be a whole number from 0 to 50")
    questions = raw.get("questions", {})
    if not isinstance(questions, Mapping):
        raise ConfigError("[annotation.questions] must be a table of questions")
    return AnnotationConfig(
        context_turns=context,
        questions=tuple(_question(key, spec) for key, spec in questions.items()),
    )
