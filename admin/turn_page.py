"""What the turn page (and the queue, which shows the same page) needs: the turn, its
media, the conversation so far, the latency waterfall, and the annotation form's
questions with their current values (the saved annotation, or a form sent back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from admin import schema, timeline
from admin.annotating import my_annotation
from admin.charts import waterfall
from admin.models import SCORE_FIELDS, Annotation, TurnGroup, TurnGroupMember, User
from admin.schema import NA, Question
from parley import db


@dataclass
class FormValues:
    """The form as it is shown: the chosen values of each question ("na" for n/a)."""

    chosen: dict[str, set[str]] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # free-text questions
    transcript_state: str = "left"
    corrected_transcript: str = ""
    better_response: str = ""
    comment: str = ""


def _as_text(question: Question, value: Any) -> list[str]:
    if value is None:
        return []
    if question.kind == "boolean":
        return ["yes" if value else "no"]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def values_of(
    questions: Sequence[Question], annotation: Annotation | None, heard: str
) -> FormValues:
    """A saved annotation's values (or a fresh form: the transcript box starts with what
    the STT heard, and the transcript is left unchecked until confirmed or edited)."""
    out = FormValues(corrected_transcript=heard)
    if annotation is None:
        return out
    scores = [getattr(annotation, name) for name in SCORE_FIELDS]
    answers = annotation.answers if isinstance(annotation.answers, dict) else {}
    na = set(annotation.not_applicable or [])
    for q in questions:
        value = schema.answer_of(q, scores, answers)
        if q.key in na:
            out.chosen[q.key] = {NA}
        elif q.kind == "text":
            out.text[q.key] = str(value or "")
        else:
            out.chosen[q.key] = set(_as_text(q, value))
    out.transcript_state = str(annotation.transcript_state)
    if out.transcript_state == "edited":
        out.corrected_transcript = str(annotation.corrected_transcript)
    out.better_response = str(annotation.better_response)
    out.comment = str(annotation.comment)
    return out


def values_sent(questions: Sequence[Question], form: MultiDict[str, str]) -> FormValues:
    """The values of a form sent back (a save refused): shown again as they were."""
    out = FormValues(
        transcript_state=form.get("transcript_state", "left"),
        corrected_transcript=form.get("corrected_transcript", ""),
        better_response=form.get("better_response", ""),
        comment=form.get("comment", ""),
    )
    for q in questions:
        sent = [v for v in form.getlist(q.key) if v]
        if q.kind == "text" and NA not in sent:
            out.text[q.key] = sent[0] if sent else ""
        else:
            out.chosen[q.key] = set(sent)
    return out


def _media(turn_ids: Sequence[str]) -> dict[str, dict[str, db.Media]]:
    found: dict[str, dict[str, db.Media]] = {}
    query = db.Media.select().where(db.Media.turn.in_(list(turn_ids))).order_by(db.Media.path)
    for media in query:
        found.setdefault(str(media.turn_id), {}).setdefault(str(media.kind), media)  # type: ignore[attr-defined]
    return found


def conversation_so_far(turn: db.Turn, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` turns before this one in its conversation, oldest first."""
    if limit <= 0:
        return []
    t = db.Turn
    earlier = list(
        t.select()
        .where((t.conversation == turn.conversation) & (t.position < turn.position))
        .order_by(t.position.desc())
        .limit(limit)
    )[::-1]
    media = _media([e.id for e in earlier])
    return [{"turn": e, **media.get(str(e.id), {})} for e in earlier]


def speech_bounds(turn: db.Turn) -> dict[str, float] | None:
    """Where the VAD found speech in the turn's input audio (seconds), if it said."""
    vad = (turn.outputs or {}).get("vad") if isinstance(turn.outputs, Mapping) else None
    try:
        start, end = float(vad["speech_start_s"]), float(vad["speech_end_s"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return {"start": start, "end": end} if 0 <= start <= end else None


def stage_outputs(turn: db.Turn) -> list[dict[str, Any]]:
    """The pipeline's context stages' results stored in ``Turn.outputs`` (entries with a
    ``kind``; the VAD's bounds are not a stage's), in the order they were stored."""
    stored = turn.outputs if isinstance(turn.outputs, Mapping) else {}
    return [
        {
            "stage": name,
            "kind": entry["kind"],
            "status": entry.get("status", "done"),
            "error": entry.get("error", ""),
            "value": entry,
        }
        for name, entry in stored.items()
        if isinstance(entry, Mapping) and "kind" in entry
    ]


def turn_context(
    turn: db.Turn, user: User, submitted: MultiDict[str, str] | None = None
) -> dict[str, Any]:
    """Everything the turn page needs."""
    current = schema.current()
    media = list(db.Media.select().where(db.Media.turn == turn.id).order_by(db.Media.path))
    mine = my_annotation(turn.id, user)
    questions = current.for_turn(str(turn.pipeline), turn.outputs)
    values = (
        values_sent(questions, submitted)
        if submitted is not None
        else values_of(questions, mine, str(turn.transcript))
    )
    others: list[Annotation] = []
    if user.is_admin:  # annotators never see other people's work (blind rating)
        query = (
            Annotation.select(Annotation, User)
            .join(User, on=Annotation.user == User.id)
            .where(Annotation.turn == turn.id)
            .order_by(Annotation.deleted_at.is_null(False), User.name)
        )
        others = [a for a in query if a.user_id != user.id or a.deleted_at is not None]
    conversation = turn.conversation
    siblings = db.Turn.select(db.Turn.id, db.Turn.position).where(
        db.Turn.conversation == conversation.id
    )
    position = int(turn.position)
    groups = (
        TurnGroup.select().join(TurnGroupMember).where(TurnGroupMember.turn == turn.id).limit(20)
    )
    record = turn.latency or {}
    return {
        "turn": turn,
        "conversation": conversation,
        "inputs": [m for m in media if m.kind == "input"],
        "outputs": [m for m in media if m.kind == "output"],
        "frames": [m for m in media if m.kind == "frame"],
        "questions": questions,
        "values": values,
        "stored": {q.key: q.stored(turn.outputs) for q in questions if q.bind},
        "mine": mine,
        "others": others,
        "extra_questions": [q for q in questions if not q.column],
        "earlier": conversation_so_far(turn, current.context_turns),
        "previous": siblings.where(db.Turn.position == position - 1).first(),
        "following": siblings.where(db.Turn.position == position + 1).first(),
        "groups": list(groups),
        "latency": sorted(record.items()),
        "latency_chart": waterfall(
            timeline.latency_bars(record), marks=timeline.latency_marks(record)
        ),
        "span_count": timeline.span_count(turn),
        "speech": speech_bounds(turn),
        "stage_outputs": stage_outputs(turn),
        "problems": [],
    }
