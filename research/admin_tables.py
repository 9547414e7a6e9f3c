"""What the research bench reads from the admin's tables (annotations, turn groups,
the turn list's filters), in one place.

The admin owns those tables (admin/models.py, admin/filters.py); when their shape
changes, this module is the only one here to adapt. A store that never ran the admin
has no annotation tables: the annotation functions then return nothing.

- a turn's *reference*: the transcript an annotator corrected it to, and the better
  answer they wrote (a turn annotated several times: the latest non-empty one);
- per run and item: each score's sum and count over the answering turn's annotations;
- the turns of a group (in the group's order), or those the admin's turn-list filters
  select (``pipeline=local&annotated=yes``: the same keys as the turn list's URL);
- the blind A/B preferences annotators gave between two runs' answers (admin/pairwise.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import peewee

from admin.models import raw_rows
from parley import db
from parley.errors import ParleyError

SCORES = ("stt_score", "llm_score", "tts_score", "overall_score")
# The admin turn list's filters (admin/filters.py TurnFilters), by their URL names.
TURN_FILTERS = (
    "pipeline",
    "device",
    "conversation",
    "status",
    "from",
    "to",
    "annotated",
    "error",
    "q",
    "group",
    "run",
    "dataset",
)


@dataclass(frozen=True)
class Correction:
    transcript: str  # "" when no annotator corrected the transcript
    answer: str  # "" when no annotator wrote a better answer


def _annotations() -> Any:
    """The admin's Annotation model, or None when the store has no annotation table."""
    from admin.models import Annotation

    if not db.database.table_exists(Annotation._meta.table_name):
        return None
    return Annotation


def corrections(turn_ids: Iterable[str]) -> dict[str, Correction]:
    """``{turn id: Correction}`` for the turns some annotator corrected."""
    annotation = _annotations()
    ids = list(turn_ids)
    if annotation is None or not ids:
        return {}
    a = annotation
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        query = (
            a.select(a.turn, a.corrected_transcript, a.better_response)
            .where(a.turn.in_(ids[start : start + 500]))
            .order_by(a.updated_at)  # later ones win
        )
        for turn_id, transcript, answer in raw_rows(query):
            old = found.get(turn_id, ("", ""))
            found[turn_id] = (transcript.strip() or old[0], answer.strip() or old[1])
    return {t: Correction(*pair) for t, pair in found.items() if any(pair)}


def score_sums(
    run_ids: Sequence[int],
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{run id: (dataset item ids, sums, counts)}`` of each score (columns in SCORES
    order) over the annotations of each run's answering turns, per item (every
    annotator's rating counts once): means over any set of items follow, as do per-item
    means for paired comparisons."""
    annotation = _annotations()
    if annotation is None or not run_ids:
        return {}
    a, r = annotation, db.RunItem
    columns = []
    for score in SCORES:
        field = getattr(a, score)
        columns += [peewee.fn.SUM(field), peewee.fn.COUNT(field)]
    query = (
        a.select(r.run, r.item, *columns)
        .join(r, on=(r.turn == a.turn))
        .where(r.run.in_(list(run_ids)))
        .group_by(r.run, r.item)
        .order_by(r.run)
    )
    found = raw_rows(query)
    if not found:
        return {}
    table = np.array(found, dtype=np.float64)  # SUM of no ratings is NULL: NaN, then 0
    table = np.nan_to_num(table)
    out = {}
    for run_id in np.unique(table[:, 0]):
        part = table[table[:, 0] == run_id]
        out[int(run_id)] = (part[:, 1].astype(np.int64), part[:, 2::2], part[:, 3::2])
    return out


def preferences(run_ids: Sequence[int]) -> list[tuple[int, int, int, str]]:
    """``(run a, run b, dataset item id in run a's dataset, choice)`` of every blind A/B
    preference between two of these runs (choice: "a", "b" or "tie", in terms of run a
    and run b); none when the store has no preference table."""
    from admin.models import Preference

    ids = list(run_ids)
    if len(ids) < 2 or not db.database.table_exists(Preference._meta.table_name):
        return []
    p = Preference
    query = p.select(p.run_a, p.run_b, p.item, p.choice).where(p.run_a.in_(ids) & p.run_b.in_(ids))
    return [(int(a), int(b), int(item), str(choice)) for a, b, item, choice in raw_rows(query)]


def group_turns(group: str) -> tuple[str, list[str]]:
    """``(group name, turn ids in the group's order)`` of an admin turn group, given by
    id or name."""
    from admin.models import TurnGroup, TurnGroupMember

    if not db.database.table_exists(TurnGroup._meta.table_name):
        raise ParleyError("this store has no turn groups (the admin has never used it)")
    g, m = TurnGroup, TurnGroupMember
    query = g.select().where((g.name == group) | (g.id == (int(group) if group.isdigit() else -1)))
    found = query.order_by(g.id).first()
    if found is None:
        raise ParleyError(f"unknown turn group {group!r} (give its id or name)")
    members = m.select(m.turn).where(m.group == found.id).order_by(m.position, m.id)
    return str(found.name), [turn_id for (turn_id,) in raw_rows(members)]


def filtered_turn_ids(filters: Mapping[str, str]) -> list[str]:
    """Ids of the turns the admin's turn-list filters select, oldest first. Unknown keys
    and values the turn list would ignore are errors here."""
    from admin.filters import TurnFilters
    from admin.models import create_admin_tables

    parsed = TurnFilters.parse(filters)
    for key, value in filters.items():
        if key not in TURN_FILTERS:
            known = ", ".join(TURN_FILTERS)
            raise ParleyError(f"unknown turn filter {key!r} (known: {known})")
        if value and key not in parsed.args():
            raise ParleyError(f"turn filter {key}={value!r}: not a valid value")
    create_admin_tables()  # the filters may join the annotation and group tables
    t = db.Turn
    query = parsed.apply(t.select(t.id), user_id=0).order_by(t.created_at, t.position)
    return [turn_id for (turn_id,) in raw_rows(query)]
