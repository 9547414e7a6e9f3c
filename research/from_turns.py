"""Datasets made of stored turns: their recorded input audio (16 kHz mono, as the
server heard it, pre-roll included) and camera frames, with the annotators'
corrections as references (research/admin_tables.py).

A turn group becomes one multi-turn conversation in the group's order; turns chosen by
filters are single items unless ``multi_turn``, which keeps each source conversation's
turns together, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from parley import db
from parley.errors import ParleyError
from research import admin_tables
from research.manifests import FrameRef, ManifestRow


def select_turns(group: str | None, filters: Mapping[str, str]) -> tuple[str, list[db.Turn], str]:
    """``(description of the selection, turns in order, conversation name or "")``."""
    if group is not None:
        name, turn_ids = admin_tables.group_turns(group)
        what, conversation = f"turn group {name!r}", f"group-{name}"
    else:
        turn_ids = admin_tables.filtered_turn_ids(filters)
        what = "turns " + "&".join(f"{k}={v}" for k, v in filters.items()) if filters else "turns"
        conversation = ""
    if not turn_ids:
        raise ParleyError(f"no stored turns in {what}")
    by_id = {t.id: t for t in _chunked_turns(turn_ids)}
    return what, [by_id[t] for t in turn_ids if t in by_id], conversation


def _chunked_turns(turn_ids: Sequence[str]) -> list[db.Turn]:
    out: list[db.Turn] = []
    for start in range(0, len(turn_ids), 500):
        out.extend(db.Turn.select().where(db.Turn.id.in_(list(turn_ids[start : start + 500]))))
    return out


def rows_from_turns(
    turns: Sequence[db.Turn],
    data_dir: Path,
    *,
    conversation: str = "",
    multi_turn: bool = False,
    frame_lead_s: float = 0.2,
) -> list[ManifestRow]:
    """One row per turn (key: the turn id). ``frame_lead_s``: where the turn's first
    frame goes in its recording (the server's pre-roll: frames are kept from the start
    of speech, the recording starts that much earlier)."""
    ids = [t.id for t in turns]
    media: dict[str, list[db.Media]] = {}
    for start in range(0, len(ids), 500):
        chunk = db.Media.select().where(db.Media.turn.in_(ids[start : start + 500]))
        for m in chunk.order_by(db.Media.kind, db.Media.path):
            media.setdefault(m.turn_id, []).append(m)
    references = admin_tables.corrections(ids)
    rows = []
    for position, turn in enumerate(turns):
        where = f"turn {turn.id}"
        stored = media.get(turn.id, [])
        inputs = [m for m in stored if m.kind == "input"]
        if not inputs or not (data_dir / inputs[0].path).is_file():
            raise ParleyError(f"{where}: its recorded input audio is missing from {data_dir}")
        frames = tuple(
            FrameRef(data_dir / m.path, frame_lead_s + m.seconds)
            for m in stored
            if m.kind == "frame" and (data_dir / m.path).is_file()
        )
        correction = references.get(turn.id, admin_tables.Correction("", ""))
        if conversation:
            place: tuple[str, int | None] = (conversation, position)
        elif multi_turn:
            place = (turn.conversation_id, turn.position)
        else:
            place = ("", None)
        rows.append(
            ManifestRow(
                where=where,
                key=turn.id,
                audio=data_dir / inputs[0].path,
                reference=correction.transcript,
                answer=correction.answer,
                conversation=place[0],
                position=place[1],
                frames=frames,
                source_turn=turn.id,
            )
        )
    return rows
