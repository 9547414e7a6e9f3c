"""The turn filters shared by the turn list, the exports and the benchmark pages, so an
export holds exactly the turns on screen.

``run`` and ``dataset`` select the turns replays made (research/): a run's answering
turns (one per item), or those of every run of a dataset version."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import peewee
from flask import abort

from admin.models import Annotation, TurnGroupMember, raw_rows
from parley import db

STATUSES = ("done", "failed", "interrupted", "no_speech", "aborted", "running")
ANNOTATED = {
    "yes": "annotated by anyone",
    "no": "not annotated",
    "mine": "annotated by me",
    "not-mine": "not annotated by me",
}


MAX_KEY = 2**31 - 1  # the largest value of an integer column (and of a page number)


def as_key(text: object) -> int | None:
    """``text`` as a non-negative integer an integer column can hold, else None: "abc",
    "1.5", "²" or 10**20 are no row's id (PostgreSQL would reject comparing them with an
    integer column, where SQLite just finds nothing)."""
    value = str(text).strip()
    if not value.isascii() or not value.isdecimal() or len(value) > 10:
        return None
    number = int(value)
    return number if number <= MAX_KEY else None


M = TypeVar("M", bound=peewee.Model)


def row_or_none(model: type[M], key: object) -> M | None:
    """The row of ``model`` whose integer primary key is ``key`` (a URL's value), or None
    for a key no integer column holds (see :func:`as_key`)."""
    number = as_key(key)
    return None if number is None else model.get_or_none(model._meta.primary_key == number)


def row_or_404(model: type[M], key: object) -> M:
    """:func:`row_or_none`, or a 404."""
    found = row_or_none(model, key)
    if found is None:
        abort(404)
    return found


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class TurnFilters:
    pipeline: str = ""
    device: str = ""
    conversation: str = ""
    status: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    annotated: str = ""  # a key of ANNOTATED, or "" for any
    error: str = ""  # "yes": has an error, "no": has none
    q: str = ""  # text in the transcript, the response or the error
    group: int | None = None
    run: int | None = None  # a replay run's id: its items' answering turns
    dataset: int | None = None  # a dataset version's id: the turns of all its runs

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> TurnFilters:
        def text(name: str, limit: int = 200) -> str:
            return str(args.get(name, "") or "").strip()[:limit]

        group, run, dataset = text("group"), text("run"), text("dataset")
        return cls(
            pipeline=text("pipeline"),
            device=text("device"),
            conversation=text("conversation"),
            status=text("status") if text("status") in STATUSES else "",
            date_from=_date(text("from")),
            date_to=_date(text("to")),
            annotated=text("annotated") if text("annotated") in ANNOTATED else "",
            error=text("error") if text("error") in ("yes", "no") else "",
            q=text("q"),
            group=as_key(group) if group else None,
            run=as_key(run) if run else None,
            dataset=as_key(dataset) if dataset else None,
        )

    def args(self, **changes: object) -> dict[str, Any]:
        """Query-string arguments that reproduce these filters (empty ones left out)."""
        current = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        out = {
            "pipeline": current.pipeline,
            "device": current.device,
            "conversation": current.conversation,
            "status": current.status,
            "from": current.date_from.isoformat() if current.date_from else "",
            "to": current.date_to.isoformat() if current.date_to else "",
            "annotated": current.annotated,
            "error": current.error,
            "q": current.q,
            "group": str(current.group) if current.group is not None else "",
            "run": str(current.run) if current.run is not None else "",
            "dataset": str(current.dataset) if current.dataset is not None else "",
        }
        return {k: v for k, v in out.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.args())

    def datetimes(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[from, to) as datetimes: the end date is included whole."""
        start = dt.datetime.combine(self.date_from, dt.time()) if self.date_from else None
        end = (
            dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time())
            if self.date_to
            else None
        )
        return start, end

    def apply(self, query: peewee.ModelSelect[Any], user_id: int) -> peewee.ModelSelect[Any]:
        """Narrow a query over ``db.Turn`` to the turns these filters select."""
        t = db.Turn
        if self.pipeline:
            query = query.where(t.pipeline == self.pipeline)
        if self.conversation:
            query = query.where(t.conversation == self.conversation)
        if self.device:
            in_device = db.Conversation.select(db.Conversation.id).where(
                db.Conversation.device == self.device
            )
            query = query.where(t.conversation.in_(in_device))
        if self.status:
            query = query.where(t.status == self.status)
        start, end = self.datetimes()
        if start is not None:
            query = query.where(t.created_at >= start)
        if end is not None:
            query = query.where(t.created_at < end)
        if self.error == "yes":
            query = query.where((t.error != "") | (t.status == "failed"))
        elif self.error == "no":
            query = query.where((t.error == "") & (t.status != "failed"))
        if self.q:
            query = query.where(
                t.transcript.contains(self.q)
                | t.response.contains(self.q)
                | t.error.contains(self.q)
                | (t.id == self.q)
                | (t.trace_id == self.q)
            )
        if self.annotated:  # counted annotations: live and done
            a = Annotation.select(Annotation.id).where(
                (Annotation.turn == t.id) & Annotation.live() & (Annotation.done == True)  # noqa: E712
            )
            if self.annotated in ("mine", "not-mine"):
                a = a.where(Annotation.user == user_id)
            exists = peewee.fn.EXISTS(a)
            query = query.where(exists if self.annotated in ("yes", "mine") else ~exists)
        if self.group is not None:
            members = TurnGroupMember.select(TurnGroupMember.turn).where(
                TurnGroupMember.group == self.group
            )
            query = query.where(t.id.in_(members))
        replayed = self.replayed_turns()
        if replayed is not None:
            query = query.where(t.id.in_(replayed))
        return query

    def replayed_turns(self) -> peewee.ModelSelect[Any] | None:
        """A subquery of the turn ids the run and dataset filters keep (None: no such
        filter). A run item's turn is the one whose answer counts (research/runs.py)."""
        if self.run is None and self.dataset is None:
            return None
        r = db.RunItem
        query = r.select(r.turn).where(r.turn.is_null(False))
        if self.run is not None:
            query = query.where(r.run == self.run)
        if self.dataset is not None:
            runs = db.Run.select(db.Run.id).where(db.Run.dataset == self.dataset)
            query = query.where(r.run.in_(runs))
        return query


def pipelines() -> list[str]:
    query = db.Turn.select(db.Turn.pipeline).distinct().order_by(db.Turn.pipeline)
    return [name for (name,) in raw_rows(query)]


def devices() -> list[str]:
    return [d for (d,) in raw_rows(db.Device.select(db.Device.id).order_by(db.Device.id))]


def runs() -> list[tuple[int, str]]:
    """Every replay run as (id, "name (pipeline)"), newest first: the run filter's
    choices."""
    r = db.Run
    query = r.select(r.id, r.name, r.pipeline).order_by(r.started_at.desc(), r.id.desc())
    return [(run_id, f"{name} ({pipeline})") for run_id, name, pipeline in raw_rows(query)]


def datasets() -> list[tuple[int, str]]:
    """Every dataset version that has runs, as (id, "name v2"): the dataset filter's
    choices."""
    d = db.Dataset
    replayed = db.Run.select(db.Run.dataset)
    query = d.select(d.id, d.name, d.version).where(d.id.in_(replayed)).order_by(d.name, d.version)
    return [(dataset_id, f"{name} v{version}") for dataset_id, name, version in raw_rows(query)]
