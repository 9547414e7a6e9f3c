"""Multi-turn groups: making them, adding turns (from the filters or checked rows), and
what a group's page (or a group queue) shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee

from admin.filters import row_or_404
from admin.models import GroupAnnotation, TurnGroup, TurnGroupMember, User, raw_rows
from parley import db

GROUP_LIMIT = 500  # turns added at once


def get_group(group_id: int) -> TurnGroup:
    """The group, or a 404 (also for an id no integer column holds)."""
    return row_or_404(TurnGroup, group_id)


def recent_groups(limit: int = 200) -> list[TurnGroup]:
    """Groups to offer in a "add to group" menu, newest first."""
    g = TurnGroup
    return list(g.select(g.id, g.name).order_by(g.created_at.desc(), g.id.desc()).limit(limit))


def create_group(name: str, description: str, by: User) -> TurnGroup:
    return TurnGroup.create(
        name=name.strip()[:200], description=description.strip()[:5000], created_by=by.id
    )


def add_turns(group: TurnGroup, turn_ids: Sequence[str]) -> int:
    """Append the turns that exist and are not members yet, in the given order; return
    how many were added."""
    m = TurnGroupMember
    with db.database.atomic():
        existing = {t for (t,) in raw_rows(m.select(m.turn).where(m.group == group.id))}
        known = {
            t for (t,) in raw_rows(db.Turn.select(db.Turn.id).where(db.Turn.id.in_(list(turn_ids))))
        }
        wanted = [t for t in dict.fromkeys(turn_ids) if t in known and t not in existing]
        last = m.select(peewee.fn.MAX(m.position)).where(m.group == group.id).scalar()
        start = -1 if last is None else int(last)
        rows = [
            {"group": group.id, "turn": t, "position": start + 1 + i} for i, t in enumerate(wanted)
        ]
        if rows:
            m.insert_many(rows).execute()
    return len(rows)


def group_context(group: TurnGroup, me: User, sent: dict[str, str] | None = None) -> dict[str, Any]:
    turns = list(
        db.Turn.select(db.Turn, TurnGroupMember.position)
        .join(TurnGroupMember)
        .where(TurnGroupMember.group == group.id)
        .order_by(TurnGroupMember.position)
        .limit(500)
    )
    inputs: dict[str, str] = {}  # turn id -> media path
    outputs: dict[str, str] = {}
    ids = [t.id for t in turns]
    kinds = db.Media.kind.in_(["input", "output"])
    media = db.Media.select(db.Media.turn, db.Media.kind, db.Media.path)
    for turn_id, kind, path in raw_rows(media.where(db.Media.turn.in_(ids) & kinds)):
        (inputs if kind == "input" else outputs).setdefault(turn_id, path)
    mine = GroupAnnotation.get_or_none(
        (GroupAnnotation.group == group.id) & (GroupAnnotation.user == me.id)
    )
    if sent is not None:
        score, comment = sent.get("score", ""), sent.get("comment", "")
    elif mine is not None:
        score = "na" if mine.not_applicable else ("" if mine.score is None else str(mine.score))
        comment = str(mine.comment)
    else:
        score, comment = "", ""
    others = []
    if me.is_admin:
        others = list(
            GroupAnnotation.select(GroupAnnotation, User)
            .join(User)
            .where((GroupAnnotation.group == group.id) & (GroupAnnotation.user != me.id))
        )
    return {
        "group": group,
        "turns": turns,
        "inputs": inputs,
        "outputs": outputs,
        "score": score,
        "comment": comment,
        "others": others,
        "problem": "",
    }
