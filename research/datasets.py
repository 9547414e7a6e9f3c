"""Datasets in the store: finding one by ``NAME`` or ``NAME@VERSION``, listing,
describing, exporting to a folder + manifest, and their replay units (a single item, or
a multi-turn conversation's items in order)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import peewee

from parley import db
from parley.errors import ParleyError
from research.manifests import EXPORT_MANIFEST


class UnknownDataset(ParleyError):
    pass


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` -> (NAME, None: the latest version); ``NAME@3`` -> (NAME, 3)."""
    name, sep, version = ref.partition("@")
    if not sep:
        return name, None
    try:
        return name, int(version.lstrip("v"))
    except ValueError:
        raise ParleyError(f"bad dataset version in {ref!r} (expected NAME@NUMBER)") from None


def find(ref: str) -> db.Dataset:
    """The dataset ``NAME`` (its latest version) or ``NAME@VERSION``."""
    name, version = parse_ref(ref)
    query = db.Dataset.select().where(db.Dataset.name == name)
    if version is not None:
        query = query.where(db.Dataset.version == version)
    found = query.order_by(db.Dataset.version.desc()).first()
    if found is None:
        known = sorted({d.name for d in db.Dataset.select(db.Dataset.name)})
        versions = [d.version for d in db.Dataset.select().where(db.Dataset.name == name)]
        if versions:
            raise UnknownDataset(f"dataset {name!r} has no version {version} (it has {versions})")
        raise UnknownDataset(
            f"unknown dataset {name!r} (known: {', '.join(known) or 'none yet'}; "
            "make one with `parley dataset import` or `parley dataset from-turns`)"
        )
    return found


def items(dataset: db.Dataset) -> list[db.DatasetItem]:
    return list(
        db.DatasetItem.select()
        .where(db.DatasetItem.dataset == dataset)
        .order_by(db.DatasetItem.position)
    )


def units(dataset_items: Sequence[db.DatasetItem]) -> list[list[db.DatasetItem]]:
    """Replay units in dataset order: each single item alone, each conversation's items
    together in conversation order (placed where its first item is)."""
    out: list[list[db.DatasetItem]] = []
    conversations: dict[str, list[db.DatasetItem]] = {}
    for item in dataset_items:
        if not item.conversation:
            out.append([item])
        elif item.conversation in conversations:
            conversations[item.conversation].append(item)
        else:
            conversations[item.conversation] = [item]
            out.append(conversations[item.conversation])
    for unit in out:
        unit.sort(key=lambda i: i.conversation_position)
    return out


def summaries() -> list[dict[str, Any]]:
    """Every dataset version: name, version, items, seconds, runs, created, source."""
    d, i, r = db.Dataset, db.DatasetItem, db.Run
    count = i.select(peewee.fn.COUNT(i.id)).where(i.dataset == d.id)
    seconds = i.select(peewee.fn.COALESCE(peewee.fn.SUM(i.seconds), 0)).where(i.dataset == d.id)
    runs = r.select(peewee.fn.COUNT(r.id)).where(r.dataset == d.id)
    query = d.select(
        d.name,
        d.version,
        count.alias("items"),
        seconds.alias("seconds"),
        runs.alias("runs"),
        d.created_at,
        d.source,
    ).order_by(d.name, d.version)
    rows: list[dict[str, Any]] = list(query.dicts())  # type: ignore[arg-type]
    return [
        {**row, "seconds": round(float(row["seconds"]), 1), "created_at": str(row["created_at"])}
        for row in rows
    ]


def describe(dataset: db.Dataset) -> dict[str, Any]:
    """A dataset version with its items and the runs made of it (plain data)."""
    runs = db.Run.select().where(db.Run.dataset == dataset).order_by(db.Run.started_at)
    return {
        "name": dataset.name,
        "version": dataset.version,
        "source": dataset.source,
        "description": dataset.description,
        "created_at": str(dataset.created_at),
        "items": [
            {
                "key": item.key,
                "position": item.position,
                "seconds": round(item.seconds, 3),
                "sample_rate": item.sample_rate,
                "channels": item.channels,
                "reference_transcript": item.reference_transcript,
                "reference_answer": item.reference_answer,
                "tags": item.tags,
                "conversation": item.conversation,
                "conversation_position": item.conversation_position,
                "frames": len(item.frames),
                "source_turn": item.source_turn,
            }
            for item in items(dataset)
        ],
        "runs": [
            {"name": run.name, "pipeline": run.pipeline, "started_at": str(run.started_at)}
            for run in runs
        ],
    }


def export(dataset: db.Dataset, folder: Path, data_dir: Path) -> int:
    """Write the dataset's recordings (``audio/<key>.wav``), frames and a
    ``manifest.jsonl`` that ``parley dataset import`` reads back; returns the item count.

    ``folder`` must not exist or be empty; it is written complete or not at all."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ParleyError(f"{folder} exists and is not an empty folder")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    lines = []
    try:
        for item in items(dataset):
            audio = Path("audio") / f"{item.key}.wav"
            _copy(data_dir / item.audio_path, partial / audio, item.key)
            frames = []
            for number, frame in enumerate(item.frames):
                name = Path("frames") / item.key / f"{number:02d}.jpg"
                _copy(data_dir / frame["path"], partial / name, item.key)
                frames.append({"file": name.as_posix(), "offset_s": frame["offset_s"]})
            record: dict[str, Any] = {"id": item.key, "file": audio.as_posix()}
            record.update(reference=item.reference_transcript, answer=item.reference_answer)
            record.update(tags=item.tags, frames=frames)
            if item.conversation:
                record.update(conversation=item.conversation, position=item.conversation_position)
            lines.append(json.dumps(record, ensure_ascii=False))
        partial.mkdir(parents=True, exist_ok=True)
        (partial / EXPORT_MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if folder.exists():
            folder.rmdir()
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return len(lines)


def _copy(source: Path, target: Path, key: str) -> None:
    if not source.is_file():
        raise ParleyError(f"item {key!r}: its stored file {source} is missing")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
