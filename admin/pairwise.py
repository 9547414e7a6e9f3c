"""The blind pairwise (A/B) queue kind: annotators hear one dataset item's request and
two runs' answers to it, labelled only A and B, and say which answer is better (or that
they tie). Preferences are kept in :class:`~admin.models.Preference`; the Compare page
(research/compare.py) counts them per run pair.

- **Items**: the items of the first run's dataset version that both runs answered
  (status done), with the queue's tag if it has one, in dataset order. Runs of two
  versions of one dataset pair up by the item's key.
- **Blind**: which run is A differs per item and annotator (a keyed hash of the
  annotator, the two runs and the item, so a page shown again keeps its order and
  nobody can work it out); the page shows neither run names, pipelines nor turn ids, and
  its audio comes through addresses that name only the queue, the item and the side.
- **Stored** in run terms: the two runs in id order (``run_a`` the lower id, whatever
  order the queue was made in, so every queue on the same two runs adds to the same
  counts), the choice as "a", "b" or "tie", and which side run a was shown on.
- **Target**: an item leaves the queue once it has ``target`` preferences (by anyone)
  or the annotator has given one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from admin.models import Preference, Queue, User, raw_rows, utcnow
from admin.queue import Progress
from parley import db

KIND = "pairwise"
SIDES = ("A", "B")
CHOICES = {"A": "A", "B": "B", "tie": "tie"}  # what the form sends


class PairError(ValueError):
    """A pairwise queue that cannot be made (unknown runs, other datasets, no items)."""


@dataclass(frozen=True)
class Pair:
    """The two runs of a pairwise queue (``run_a``: the lower id) and its tag."""

    run_a: db.Run
    run_b: db.Run
    tag: str = ""


def _ids(filters: Any) -> list[int]:
    runs = filters.get("runs") if isinstance(filters, Mapping) else None
    if not isinstance(runs, list):
        return []
    return [r for r in runs if isinstance(r, int) and not isinstance(r, bool)]


def pair_of(q: Queue) -> Pair | None:
    """The queue's pair (None when one of its runs has been deleted)."""
    ids = _ids(q.filters)
    if len(ids) != 2:
        return None
    runs = {r.id: r for r in db.Run.select().where(db.Run.id.in_(ids))}
    if len(runs) != 2:
        return None
    low, high = sorted(runs)
    tag = q.filters.get("tag", "") if isinstance(q.filters, Mapping) else ""
    return Pair(runs[low], runs[high], str(tag or ""))


def _tagged(text: str | None, tag: str, parsed: dict[str, list[str]]) -> bool:
    if not tag:
        return True
    key = text or "[]"
    tags = parsed.get(key)
    if tags is None:
        tags = parsed[key] = json.loads(key)
    return tag in tags


def items(pair: Pair) -> list[int]:
    """Ids (in run a's dataset version) of the items both runs did, in dataset order."""
    i, ib = db.DatasetItem, db.DatasetItem.alias()
    ra, rb = db.RunItem, db.RunItem.alias()
    query = (
        i.select(i.id, i.tags)
        .join(ra, on=(ra.item == i.id))
        .join(ib, on=((ib.dataset == pair.run_b.dataset_id) & (ib.key == i.key)))
        .join(rb, on=(rb.item == ib.id))
        .where(
            (i.dataset == pair.run_a.dataset_id)
            & (ra.run == pair.run_a.id)
            & (ra.status == "done")
            & (rb.run == pair.run_b.id)
            & (rb.status == "done")
        )
        .order_by(i.position)
    )
    parsed: dict[str, list[str]] = {}
    return [item for item, tags in raw_rows(query) if _tagged(tags, pair.tag, parsed)]


def check_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """A pairwise queue's filters, checked: ``{"runs": [id, id], "tag": str}`` naming
    two runs of one dataset that both answered some item (with the tag). PairError
    says what is wrong."""
    ids = _ids(filters)
    if len(ids) != 2 or ids[0] == ids[1]:
        raise PairError("choose two different runs to compare")
    runs = {r.id: r for r in db.Run.select().where(db.Run.id.in_(ids))}
    missing = [str(r) for r in ids if r not in runs]
    if missing:
        raise PairError(f"unknown run id {', '.join(missing)}")
    names = {
        d.name
        for d in db.Dataset.select().where(db.Dataset.id.in_([r.dataset_id for r in runs.values()]))
    }
    if len(names) != 1:
        raise PairError("the two runs replayed different datasets: their answers do not pair up")
    tag = str(filters.get("tag", "") or "").strip()[:200]
    low, high = sorted(runs)
    if not items(Pair(runs[low], runs[high], tag)):
        with_tag = f" with tag {tag!r}" if tag else ""
        raise PairError(f"no item{with_tag} was answered by both runs: nothing to compare")
    return {"runs": ids, "tag": tag}


def _given(pair: Pair) -> list[tuple[int, int]]:
    """(item, user) of every preference between the pair's runs."""
    p = Preference
    query = p.select(p.item, p.user).where((p.run_a == pair.run_a.id) & (p.run_b == pair.run_b.id))
    return [(int(item), int(user)) for item, user in raw_rows(query)]


def next_item(q: Queue, user: User, after: str) -> db.DatasetItem | None:
    """The first item (after the skipped item ``after``) that ``user`` has not judged
    and that has fewer than the queue's target of preferences."""
    pair = pair_of(q)
    if pair is None:
        return None
    given = _given(pair)
    mine = {item for item, who in given if who == user.id}
    counts = Counter(item for item, _ in given)
    open_items = [i for i in items(pair) if i not in mine and counts[i] < q.target]
    if after:
        order = {item: n for n, item in enumerate(items(pair))}
        skipped = order.get(int(after)) if after.isdigit() else None
        if skipped is None:
            return None
        open_items = [i for i in open_items if order[i] > skipped]
    return db.DatasetItem.get_by_id(open_items[0]) if open_items else None


def progress(q: Queue, user: User) -> Progress:
    pair = pair_of(q)
    if pair is None:
        return Progress(done=0, total=0, left_for_target=0)
    chosen = items(pair)
    given = _given(pair)
    wanted = set(chosen)
    mine = {item for item, who in given if who == user.id and item in wanted}
    counts = Counter(item for item, _ in given)
    short = sum(1 for i in chosen if counts[i] < q.target)
    return Progress(done=len(mine), total=len(chosen), left_for_target=short)


def swapped(secret: str, user_id: int, pair: Pair, item_id: int) -> bool:
    """Whether run b's answer is shown as A for this annotator and item: a keyed hash,
    so the order looks random, stays put when the page is shown again, and cannot be
    worked out without the site's secret key."""
    message = f"{user_id}:{pair.run_a.id}:{pair.run_b.id}:{item_id}".encode()
    return bool(hmac.new(secret.encode(), message, hashlib.sha256).digest()[0] & 1)


def in_pair(pair: Pair, item: db.DatasetItem) -> bool:
    """Whether ``item`` is one of the pair's items (without listing them all)."""
    tags = item.tags if isinstance(item.tags, list) else []
    if item.dataset_id != pair.run_a.dataset_id or (pair.tag and pair.tag not in tags):
        return False
    return all(result is not None and result.status == "done" for result in results(pair, item))


def results(pair: Pair, item: db.DatasetItem) -> list[db.RunItem | None]:
    """What run a and run b got for ``item`` (run b's item: the same key in its
    dataset version)."""
    out: list[db.RunItem | None] = []
    for run in (pair.run_a, pair.run_b):
        r, i = db.RunItem, db.DatasetItem
        found = (
            r.select()
            .join(i, on=(r.item == i.id))
            .where((r.run == run.id) & (i.dataset == run.dataset_id) & (i.key == item.key))
            .first()
        )
        out.append(found)
    return out


def side_results(
    pair: Pair, item: db.DatasetItem, user_id: int, secret: str
) -> dict[str, db.RunItem | None]:
    """``{"A": run item shown as A, "B": ...}`` for this annotator."""
    got = results(pair, item)
    if swapped(secret, user_id, pair, item.id):
        got.reverse()
    return dict(zip(SIDES, got, strict=True))


def answer_media(result: db.RunItem | None) -> db.Media | None:
    """The stored answer audio of a run item's answering turn."""
    if result is None or not result.turn_id:
        return None
    m = db.Media
    return m.select().where((m.turn == result.turn_id) & (m.kind == "output")).first()


def mine(pair: Pair, item: db.DatasetItem, user_id: int) -> Preference | None:
    p = Preference
    return p.get_or_none(
        (p.run_a == pair.run_a.id)
        & (p.run_b == pair.run_b.id)
        & (p.item == item.id)
        & (p.user == user_id)
    )


def screen_choice(found: Preference | None, is_swapped: bool) -> str:
    """A saved preference as the page shows it ("A", "B", "tie"; "" for none)."""
    if found is None:
        return ""
    if found.choice == "tie":
        return "tie"
    first = "B" if is_swapped else "A"  # where run a is shown
    return first if found.choice == "a" else ("A" if first == "B" else "B")


def save(
    q: Queue, pair: Pair, item: db.DatasetItem, user: User, choice: str, comment: str, secret: str
) -> Preference:
    """Store (or change) ``user``'s preference for ``item``; ``choice`` is what the page
    sent ("A", "B" or "tie"). PairError for anything else."""
    if choice not in CHOICES:
        raise PairError("choose A, B or tie")
    is_swapped = swapped(secret, user.id, pair, item.id)
    if choice == "tie":
        stored = "tie"
    else:
        stored = "a" if (choice == "A") != is_swapped else "b"
    p = Preference
    now = utcnow()
    values: dict[Any, Any] = {
        p.choice: stored,
        p.shown: "ba" if is_swapped else "ab",
        p.comment: comment.strip()[:5000],
        p.queue: q.id,
        p.updated_at: now,
    }
    p.insert(
        run_a=pair.run_a.id,
        run_b=pair.run_b.id,
        item=item.id,
        user=user.id,
        created_at=now,
        choice=stored,
        shown=values[p.shown],
        comment=values[p.comment],
        queue=q.id,
        updated_at=now,
    ).on_conflict(conflict_target=[p.run_a, p.run_b, p.item, p.user], update=values).execute()
    found = mine(pair, item, user.id)
    assert found is not None
    return found


def request_audio(item: db.DatasetItem, data_dir: Path) -> Path | None:
    """The item's recording, if its file is there."""
    from admin.views.media import resolve

    path = resolve(data_dir, str(item.audio_path))
    return path if path is not None and path.is_file() else None


def describe(q: Queue) -> str:
    """The queue in words for admins (run names: the queues page is admins' only)."""
    ids = _ids(q.filters)
    names = dict(raw_rows(db.Run.select(db.Run.id, db.Run.name).where(db.Run.id.in_(ids))))
    shown = " vs ".join(str(names.get(i, f"deleted run {i}")) for i in ids)
    tag = q.filters.get("tag") if isinstance(q.filters, Mapping) else ""
    return f"{shown}{f' · tag {tag}' if tag else ''}"


def blind_text(q: Queue) -> str:
    """What annotators see of the queue: the dataset and tag, never the runs."""
    pair = pair_of(q)
    if pair is None:
        return "a run of this queue was deleted"
    dataset = db.Dataset.get_by_id(pair.run_a.dataset_id)
    return f"A/B · dataset {dataset.name}{f' · tag {pair.tag}' if pair.tag else ''}"
