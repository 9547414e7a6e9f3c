"""Runs: a dataset version replayed through one pipeline, and what each item got.

A run records what it was made with (dataset version, pipeline, the pipeline's
configuration, the Parley git revision, the pace). Re-running a run by name resumes it:
items already done are skipped; the configuration and pace must be the same.

:func:`record` turns the stored turns a recording made into the run's row for that item
(:class:`parley.db.RunItem`): its status, the transcript and answer, the word and
character edit counts against the item's reference transcript, and the answering turn's
latency record packed as numbers, so comparing runs of 10,000 items needs no JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.headless import TurnReport
from parley import db
from parley.config import Config
from parley.errors import ParleyError

PACES = ("realtime", "fast")


class RunMismatch(ParleyError):
    """A run of that name exists but was made differently."""


class StoreMismatch(ParleyError):
    """The server stores its turns in another database than this command reads."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_SECRET = re.compile(r"key|token|secret|password", re.IGNORECASE)


def _public(value: Any) -> Any:
    """``value`` without entries whose name says they hold a secret (an ``api_key`` in a
    pool's options): a run's snapshot is shown to every admin user."""
    if isinstance(value, Mapping):
        return {k: _public(v) for k, v in value.items() if not _SECRET.search(str(k))}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    return value


def config_snapshot(config: Config, pipeline: str) -> dict[str, Any]:
    """The pipeline's stages, the pools they use (engine, options, addresses) and the
    endpointing settings: what decides a run's results besides the recordings. Plain
    JSON values (so a stored snapshot compares equal to a new one), never a secret
    (no worker tokens or TLS settings; option names with key/token/secret/password
    are left out)."""
    chosen = config.pipeline(pipeline)
    stages = {
        name: {
            "kind": stage.kind,
            "pool": stage.pool,
            "inputs": list(stage.inputs or ()),
            "params": stage.params,
        }
        for name, stage in chosen.stages.items()
    }
    pools = {}
    for stage in chosen.stages.values():
        pool = config.pool(stage.pool)
        pools[pool.name] = {
            "stage": pool.stage,
            "engine": pool.engine,
            "addresses": list(pool.addresses),
            "options": pool.options,
        }
    snapshot = {
        "pipeline": {"name": chosen.name, "description": chosen.description, "stages": stages},
        "pools": pools,
        "vad": dataclasses.asdict(config.vad),
    }
    return dict(json.loads(json.dumps(_public(snapshot), default=str)))


def _comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without what may move without changing results (worker addresses)."""
    pools = {
        name: {k: v for k, v in pool.items() if k != "addresses"}
        for name, pool in snapshot.get("pools", {}).items()
    }
    return {**snapshot, "pools": pools}


def git_revision(path: Path | None = None) -> str:
    """The commit of the Parley checkout this code runs from ("-dirty" if it has
    uncommitted changes); "" when it is not a git checkout."""
    where = path or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}-dirty" if dirty else head


NAME_LIMIT = 200  # Run.name's length


def check_run_name(name: str) -> str:
    """``name`` if `parley compare` can find a run by it (research/compare_runs.py
    reads ``#ID`` as an id and strips spaces); ParleyError saying why not."""
    if name.startswith("#"):
        raise ParleyError(
            f"run name {name!r} starts with '#', which `parley compare` reads as a run's "
            "id (#ID): choose a name without it"
        )
    if not name.strip():
        raise ParleyError("a run name cannot be empty")
    if name != name.strip():
        raise ParleyError(
            f"run name {name!r} begins or ends with a space, which `parley compare` "
            "drops: choose a name without it"
        )
    if any(not char.isprintable() for char in name):
        raise ParleyError(f"run name {name!r} holds a control character")
    if len(name) > NAME_LIMIT:
        raise ParleyError(f"run name {name[:40]!r}... is longer than {NAME_LIMIT} characters")
    return name


def run_names(dataset: db.Dataset, pipelines: Sequence[str], name: str | None) -> list[str]:
    """``name`` for one pipeline, ``name-PIPELINE`` for several; without a name, a new
    timestamped name per pipeline. ParleyError for a name `parley compare` could not
    find (see :func:`check_run_name`)."""
    if name is not None:
        names = [name] if len(pipelines) == 1 else [f"{name}-{p}" for p in pipelines]
        return [check_run_name(n) for n in names]
    stamp = _now().strftime("%Y%m%d-%H%M%S")
    return [f"{dataset.name}-v{dataset.version}-{p}-{stamp}" for p in pipelines]


def open_run(
    name: str, dataset: db.Dataset, pipeline: str, config: Config, pace: str
) -> tuple[db.Run, bool]:
    """``(the run name, whether it is new)``: created, or resumed if it exists and was
    made the same way (RunMismatch otherwise); a name `parley compare` could not find
    is refused (:func:`check_run_name`)."""
    if pace not in PACES:
        raise ParleyError(f"unknown pace {pace!r} (realtime or fast)")
    check_run_name(name)
    snapshot = config_snapshot(config, pipeline)
    run = db.Run.get_or_none(db.Run.name == name)
    if run is None:
        created = db.Run.create(
            name=name,
            dataset=dataset,
            pipeline=pipeline,
            config=snapshot,
            git_revision=git_revision(),
            pace=pace,
        )
        return created, True
    made = db.Dataset.get_by_id(run.dataset_id)
    if made.id != dataset.id:
        raise RunMismatch(
            f"run {name!r} replays dataset {made.name}@{made.version}, not "
            f"{dataset.name}@{dataset.version}: choose another --run name"
        )
    if run.pipeline != pipeline:
        raise RunMismatch(f"run {name!r} uses pipeline {run.pipeline!r}, not {pipeline!r}")
    if run.pace != pace:
        raise RunMismatch(f"run {name!r} was replayed at --pace {run.pace}; resume it with that")
    if _comparable(run.config) != _comparable(snapshot):
        raise RunMismatch(
            f"pipeline {pipeline!r} is configured differently from when run {name!r} "
            "started: start a new run (another --run name) to replay it as it is now"
        )
    return run, False


def discard_empty(run_rows: Iterable[db.Run]) -> None:
    """Delete those of ``run_rows`` that hold no item (a replay that never started)."""
    for run in run_rows:
        if not db.RunItem.select().where(db.RunItem.run == run.id).exists():
            db.Run.delete_by_id(run.id)


def done_items(run: db.Run) -> set[int]:
    """Ids of the dataset items this run has finished successfully."""
    r = db.RunItem
    query = r.select(r.item_id).where((r.run == run) & (r.status == "done"))
    return {row.item_id for row in query}


def finish(run: db.Run) -> None:
    db.Run.update(finished_at=_now()).where(db.Run.id == run.id).execute()


def _latency_vector(run: db.Run, latency: dict[str, Any]) -> bytes:
    """The record's numbers in the order of ``run.latency_keys`` (new names appended)."""
    keys = list(run.latency_keys or [])
    numeric = {k: float(v) for k, v in latency.items() if isinstance(v, int | float)}
    added = [k for k in numeric if k.endswith("_ms") and k not in keys]
    if added:
        keys += sorted(added)
        run.latency_keys = keys
        run.save(only=[db.Run.latency_keys])
    return np.array([numeric.get(k, math.nan) for k in keys], dtype="<f8").tobytes()


def _stored_turns(reports: Iterable[TurnReport]) -> dict[str, db.Turn]:
    ids = [r.turn_id for r in reports]
    return {t.id: t for t in db.Turn.select().where(db.Turn.id.in_(ids))} if ids else {}


def record(
    run: db.Run,
    items: Sequence[db.DatasetItem],
    turns: Sequence[Sequence[TurnReport]],
    error: str = "",
) -> list[tuple[str, str]]:
    """Store what ``run`` got for ``items`` (one replayed unit): ``turns[i]`` are the
    turns the edge saw for item i (missing: the stream broke first, see ``error``).
    Returns each item's (status, error). Raises StoreMismatch when the server finished turns
    that this database does not hold."""
    from admin.transcripts import edit_counts

    reports = [r for per_item in turns for r in per_item]
    stored = _stored_turns(reports)
    lost = [r.turn_id for r in reports if r.latency_ms and r.turn_id not in stored]
    if lost:
        raise StoreMismatch(
            f"the server finished turn {lost[0]} but this command's database "
            f"({db.database.obj.database}) does not hold it: the server must store into "
            "the same database (same [store] settings / PARLEY_HOME)"
        )
    outcomes = []
    with db.write_transaction():
        for index, item in enumerate(items):
            seen = list(turns[index]) if index < len(turns) else []
            made = [stored[r.turn_id] for r in seen if r.turn_id in stored]
            fields: dict[str, Any] = {
                "run": run.id,
                "item": item.id,
                "turn_ids": [t.id for t in made],
                "finished_at": _now(),
            }
            if not made:
                problem = next((r.error for r in seen if r.error), "") or error
                fields.update(status="failed", error=problem or "no speech detected")
            else:
                answer = made[-1]
                failed = answer.status != "done"
                fields.update(
                    status="failed" if failed else "done",
                    error=_turn_error(answer) if failed else "",
                    turn=answer.id,
                    trace_id=answer.trace_id,
                    transcript=" ".join(t.transcript for t in made if t.transcript),
                    response=answer.response,
                    latency=_latency_vector(run, answer.latency or {}),
                )
                counts = edit_counts(item.reference_transcript, fields["transcript"])
                if item.reference_transcript and counts is not None:
                    fields.update(dataclasses.asdict(counts))
            db.RunItem.delete().where(
                (db.RunItem.run == run.id) & (db.RunItem.item == item.id)
            ).execute()
            db.RunItem.insert(**fields).execute()
            outcomes.append((fields["status"], fields.get("error", "")))
    return outcomes


def _turn_error(turn: db.Turn) -> str:
    if turn.status == "interrupted":
        return "the answer was interrupted"
    stage = f"{turn.error_stage}: " if turn.error_stage else ""
    return f"{stage}{turn.error or turn.status}"
