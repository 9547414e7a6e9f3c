"""Multi-turn groups: making them, adding turns (from the filters or checked rows)."""

from __future__ import annotations

from collections.abc import Sequence

import peewee
from flask import abort

from admin.models import TurnGroup, TurnGroupMember, User, raw_rows
from parley import db

GROUP_LIMIT = 500  # turns added at once


def get_group(group_id: int) -> TurnGroup:
    group = TurnGroup.get_or_none(TurnGroup.id == group_id)
    if group is None:
        abort(404)
    return group


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
