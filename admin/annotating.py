"""Writing annotations: a user's own, never anyone else's (the user is the session's).

The save rules (the accuracy figures rest on them):

- every required question of the turn (the four scores and the configured ones) needs
  an answer or an explicit n/a, else nothing is saved and the form says what is missing;
- the transcript is *left* unless the annotator confirmed it (the STT heard right) or
  edited it; only confirmed or edited transcripts are WER references;
- a value outside a question's choices is an error that names the question.

Deleting is soft: the row is kept with ``deleted_at`` and who deleted it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from werkzeug.datastructures import MultiDict

from admin import score_cache
from admin.models import (
    TRANSCRIPT_STATES,
    Annotation,
    GroupAnnotation,
    TurnGroup,
    User,
    utcnow,
)
from admin.schema import NA, Question
from admin.transcripts import edit_counts, normalise
from parley import db

MAX_TEXT = 20000


@dataclass
class Submission:
    """A parsed annotation form: what to store, and what is wrong or missing."""

    scores: dict[str, int | None] = field(default_factory=dict)  # built-in columns
    answers: dict[str, Any] = field(default_factory=dict)  # configured questions
    not_applicable: list[str] = field(default_factory=list)
    transcript_state: str = "left"
    corrected_transcript: str = ""
    better_response: str = ""
    comment: str = ""
    missing: list[Question] = field(default_factory=list)  # required, unanswered
    errors: list[str] = field(default_factory=list)  # values that are not allowed

    @property
    def problems(self) -> list[str]:
        missing = ", ".join(q.label for q in self.missing)
        needs = [f"answer or mark n/a: {missing}"] if missing else []
        return self.errors + needs


def _text(form: MultiDict[str, str], name: str) -> str:
    return (form.get(name) or "").strip()[:MAX_TEXT]


def _answer(question: Question, form: MultiDict[str, str]) -> tuple[Any, str]:
    """(value or None, error) of one question; the value NA means "n/a"."""
    raw = [v.strip() for v in form.getlist(question.key)]
    if NA in raw:
        return NA, ""
    if question.kind == "text":
        text = (raw[0] if raw else "")[:MAX_TEXT]
        return text or None, ""
    chosen = [v for v in raw if v]
    if not chosen:
        return None, ""
    wrong = [v for v in chosen if v not in question.values]
    if wrong:
        allowed = ", ".join(question.values)
        return None, f"{question.label}: {wrong[0][:40]!r} is not one of {allowed}"
    if question.multiple:
        return sorted(set(chosen), key=question.values.index), ""
    if len(chosen) > 1:
        return None, f"{question.label}: give one answer"
    value = chosen[0]
    if question.kind == "ordinal":
        return int(value), ""
    if question.kind == "boolean":
        return value == "yes", ""
    return value, ""


def _transcript(form: MultiDict[str, str], heard: str, out: Submission) -> None:
    """Confirmed, edited or left (see the module's doc); the reference text with it."""
    text = _text(form, "corrected_transcript")
    state = form.get("transcript_state", "left")
    if state not in TRANSCRIPT_STATES:
        out.errors.append(
            f"Transcript: {state[:40]!r} is not one of {', '.join(TRANSCRIPT_STATES)}"
        )
        return
    if normalise(text) and normalise(text) != normalise(heard):
        out.transcript_state, out.corrected_transcript = "edited", text
    elif state == "confirmed":
        out.transcript_state, out.corrected_transcript = "confirmed", heard
    else:
        out.transcript_state, out.corrected_transcript = "left", ""


def parse(
    form: MultiDict[str, str],
    questions: Sequence[Question],
    turn: db.Turn,
) -> Submission:
    """Read an annotation form for ``turn`` whose questions are ``questions``."""
    out = Submission()
    outputs = turn.outputs if isinstance(turn.outputs, Mapping) else {}
    for question in questions:
        value, error = _answer(question, form)
        if error:
            out.errors.append(error)
            continue
        if value == NA:
            out.not_applicable.append(question.key)
            value = None
        elif value is None and question.required:
            out.missing.append(question)
        if question.column:
            out.scores[question.column] = value
        elif value is not None:
            stored = question.stored(outputs)
            out.answers[question.key] = (
                {"value": value, "stored": stored} if question.bind else value
            )
    _transcript(form, str(turn.transcript), out)
    out.better_response = _text(form, "better_response")
    out.comment = _text(form, "comment")
    return out


def set_edit_counts(annotation: Annotation, transcript: str) -> None:
    """Word/character errors of the STT transcript against the reference, for a
    confirmed or edited transcript (else none: not a WER reference)."""
    reference = str(annotation.corrected_transcript)
    counts = edit_counts(reference, transcript) if annotation.transcript_state != "left" else None
    annotation.word_errors = counts.word_errors if counts else None
    annotation.word_count = counts.word_count if counts else None
    annotation.char_errors = counts.char_errors if counts else None
    annotation.char_count = counts.char_count if counts else None


def my_annotation(turn_id: str, user: User) -> Annotation | None:
    """``user``'s live annotation of the turn."""
    a = Annotation
    found = a.get_or_none((a.turn == turn_id) & (a.user == user.id) & a.live())
    return cast("Annotation | None", found)


def save_annotation(
    turn: db.Turn, user: User, submission: Submission, asked: Sequence[Question]
) -> Annotation:
    """Create or update ``user``'s annotation of ``turn`` from a submission without
    problems. Answers to questions not ``asked`` this time (no longer configured, or not
    shown) are kept."""
    if submission.problems:
        raise ValueError("; ".join(submission.problems))
    keys = {q.key for q in asked}
    with db.database.atomic():
        annotation = my_annotation(turn.id, user) or Annotation(turn=turn.id, user=user.id)
        annotation.pipeline = turn.pipeline
        for name, value in submission.scores.items():
            setattr(annotation, name, value)
        old_answers = annotation.answers if isinstance(annotation.answers, dict) else {}
        old_na = annotation.not_applicable if isinstance(annotation.not_applicable, list) else []
        annotation.answers = {
            **{k: v for k, v in old_answers.items() if k not in keys},
            **submission.answers,
        }
        annotation.not_applicable = [k for k in old_na if k not in keys] + submission.not_applicable
        annotation.transcript_state = submission.transcript_state
        annotation.corrected_transcript = submission.corrected_transcript
        annotation.better_response = submission.better_response
        annotation.comment = submission.comment
        set_edit_counts(annotation, str(turn.transcript))
        annotation.done = True
        annotation.updated_at = utcnow()
        annotation.save()
        score_cache.refresh([turn.id])
    return annotation


def delete_annotation(annotation: Annotation, by: User) -> None:
    """Soft delete: kept, with who and when, out of every figure and list but the
    admins' view of deleted annotations."""
    with db.database.atomic():
        now = utcnow()
        annotation.deleted_at, annotation.updated_at = now, now
        annotation.deleted_by = by
        annotation.save(only=[Annotation.deleted_at, Annotation.deleted_by, Annotation.updated_at])
        score_cache.refresh([annotation.turn_id])


def restore_annotation(annotation: Annotation) -> None:
    """Undo a soft delete, unless the author has annotated the turn again since."""
    if my_annotation(annotation.turn_id, annotation.user) is not None:
        raise ValueError("its author has a newer annotation of this turn")
    with db.database.atomic():
        annotation.deleted_at, annotation.deleted_by, annotation.updated_at = None, None, utcnow()
        annotation.save(only=[Annotation.deleted_at, Annotation.deleted_by, Annotation.updated_at])
        score_cache.refresh([annotation.turn_id])


def parse_group_score(form: MultiDict[str, str]) -> tuple[int | None, bool, str]:
    """(score, n/a, problem) of a group score form: a 0-5 score or n/a is required."""
    raw = (form.get("score") or "").strip()
    if raw == NA:
        return None, True, ""
    if raw in {str(v) for v in range(6)}:
        return int(raw), False, ""
    return (
        None,
        False,
        "give the group a score from 0 to 5, or n/a"
        if not raw
        else (f"group score {raw[:20]!r} is not one of 0-5"),
    )


def save_group_annotation(
    group: TurnGroup, user: User, score: int | None, not_applicable: bool, comment: str
) -> None:
    with db.database.atomic():
        found = GroupAnnotation.get_or_none(
            (GroupAnnotation.group == group.id) & (GroupAnnotation.user == user.id)
        )
        annotation = found or GroupAnnotation(group=group.id, user=user.id)
        annotation.score, annotation.not_applicable = score, not_applicable
        annotation.comment = comment.strip()[:MAX_TEXT]
        annotation.updated_at = utcnow()
        annotation.save()
