"""Writing annotations: a user's own, never anyone else's (the user is the session's)."""

from __future__ import annotations

from typing import cast

from flask_wtf import FlaskForm
from wtforms import IntegerField, TextAreaField
from wtforms.validators import Length, NumberRange, Optional

from admin import score_cache
from admin.models import Annotation, GroupAnnotation, TurnGroup, User, utcnow
from admin.transcripts import edit_counts
from parley import db

_SCORE = [Optional(), NumberRange(0, 5)]
_TEXT = [Length(max=20000)]


class AnnotationForm(FlaskForm):
    stt_score = IntegerField("STT", validators=_SCORE)
    llm_score = IntegerField("LLM", validators=_SCORE)
    tts_score = IntegerField("TTS", validators=_SCORE)
    overall_score = IntegerField("Overall", validators=_SCORE)
    corrected_transcript = TextAreaField("What was really said", validators=_TEXT)
    better_response = TextAreaField("A better response", validators=_TEXT)
    comment = TextAreaField("Comment", validators=_TEXT)


class GroupAnnotationForm(FlaskForm):
    score = IntegerField("Group score", validators=_SCORE)
    comment = TextAreaField("Comment", validators=_TEXT)


def set_edit_counts(annotation: Annotation, transcript: str) -> None:
    """Word/character errors of the STT transcript against the correction (or none)."""
    counts = edit_counts(str(annotation.corrected_transcript), transcript)
    annotation.word_errors = counts.word_errors if counts else None
    annotation.word_count = counts.word_count if counts else None
    annotation.char_errors = counts.char_errors if counts else None
    annotation.char_count = counts.char_count if counts else None


def my_annotation(turn: db.Turn, user: User) -> Annotation | None:
    found = Annotation.get_or_none((Annotation.turn == turn.id) & (Annotation.user == user.id))
    return cast("Annotation | None", found)


def save_annotation(turn: db.Turn, user: User, form: AnnotationForm) -> Annotation:
    """Create or update ``user``'s annotation of ``turn`` from a validated form."""
    with db.database.atomic():
        annotation = my_annotation(turn, user) or Annotation(turn=turn.id, user=user.id)
        annotation.pipeline = turn.pipeline
        for name in ("stt_score", "llm_score", "tts_score", "overall_score"):
            setattr(annotation, name, getattr(form, name).data)
        annotation.corrected_transcript = (form.corrected_transcript.data or "").strip()
        annotation.better_response = (form.better_response.data or "").strip()
        annotation.comment = (form.comment.data or "").strip()
        set_edit_counts(annotation, str(turn.transcript))
        annotation.updated_at = utcnow()
        annotation.save()
        score_cache.refresh([turn.id])
    return annotation


def save_group_annotation(group: TurnGroup, user: User, form: GroupAnnotationForm) -> None:
    with db.database.atomic():
        found = GroupAnnotation.get_or_none(
            (GroupAnnotation.group == group.id) & (GroupAnnotation.user == user.id)
        )
        annotation = found or GroupAnnotation(group=group.id, user=user.id)
        annotation.score = form.score.data
        annotation.comment = (form.comment.data or "").strip()
        annotation.updated_at = utcnow()
        annotation.save()
