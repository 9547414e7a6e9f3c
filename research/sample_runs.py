"""Plausible runs for benchmarks: a dataset of N spoken commands replayed through the
sample pipelines (admin/sample_turns.py's latency shapes and mishearings), with their
turns, run items and some annotations. Never used on a real store: `parley bench
replay` seeds a scratch database with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from admin.models import Annotation, Preference, User, bulk_insert, create_admin_tables
from admin.sample_turns import COMMANDS, PIPELINES, latency_record, misheard
from admin.transcripts import edit_counts
from parley import db

TAGS = ("lights", "weather", "timers", "music", "cooking", "reminders", "calendar", "heating")


@dataclass(frozen=True)
class SeededRuns:
    dataset: str
    runs: list[str]
    items: int
    annotations: int
    preferences: int = 0


def seed_runs(
    items: int,
    pipelines: tuple[str, ...] = tuple(PIPELINES),
    *,
    annotated: float = 0.2,
    preferred: float = 0.1,
) -> SeededRuns:
    """A dataset ``bench-commands`` of ``items`` items (no audio files: comparisons do
    not read them) and one finished run per pipeline, in the open database; each
    answering turn has an answer audio row (the file is not written). A share
    ``annotated`` of each run's turns gets one annotation, and a share ``preferred`` of
    the items one blind A/B preference per pair of runs (admin/pairwise.py)."""
    rng = np.random.default_rng(0)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    create_admin_tables()
    with db.database.atomic():
        dataset = db.Dataset.create(name="bench-commands", source="sample data")
        rows: list[dict[str, Any]] = []
        for position in range(items):
            command = int(rng.integers(len(COMMANDS)))
            rows.append(
                {
                    "dataset": dataset.id,
                    "position": position,
                    "key": f"command-{position:05d}",
                    "audio_path": f"datasets/bench-commands/v1/{position:05d}.wav",
                    "sample_rate": 16000,
                    "seconds": float(rng.uniform(1.2, 4.0)),
                    "reference_transcript": COMMANDS[command][0],
                    "reference_answer": COMMANDS[command][1],
                    "tags": [TAGS[command]],
                }
            )
        bulk_insert(db.DatasetItem, rows)
        item_ids = [i.id for i in db.DatasetItem.select().where(db.DatasetItem.dataset == dataset)]
        user = User.create(name="bench-annotator", password_hash="-")
        db.Device.get_or_create(id="parley-replay")
    counts: dict[tuple[str, str], Any] = {}
    names, annotations = [], 0
    for pipeline in pipelines:
        keys: list[str] = []
        with db.database.atomic():
            run = db.Run.create(
                name=f"bench-{pipeline}", dataset=dataset, pipeline=pipeline, pace="realtime"
            )
            conversations, turns, results, notes, media = [], [], [], [], []
            for item_id, item in zip(item_ids, rows, strict=True):
                said, answer = str(item["reference_transcript"]), str(item["reference_answer"])
                heard = misheard(rng, said)
                record = latency_record(rng, pipeline)
                if not keys:
                    keys = sorted(k for k in record if k.endswith("_ms"))
                cid, tid = str(uuid.uuid4()), str(uuid.uuid4())
                conversations.append({"id": cid, "device": "parley-replay", "pipeline": pipeline})
                turns.append(
                    {
                        "id": tid,
                        "conversation": cid,
                        "position": 0,
                        "pipeline": pipeline,
                        "status": "done",
                        "transcript": heard,
                        "response": answer,
                        "latency": record,
                        "trace_id": uuid.uuid4().hex,
                        "created_at": now,
                    }
                )
                media.append({"turn": tid, "kind": "output", "path": f"turns/{tid}/output.wav"})
                if (said, heard) not in counts:
                    found = edit_counts(said, heard)
                    assert found is not None  # the commands are never empty
                    counts[(said, heard)] = dataclasses.asdict(found)
                vector = np.array([record.get(k, np.nan) for k in keys], dtype="<f8")
                results.append(
                    {
                        "run": run.id,
                        "item": item_id,
                        "status": "done",
                        "turn": tid,
                        "turn_ids": [tid],
                        "trace_id": turns[-1]["trace_id"],
                        "transcript": heard,
                        "response": answer,
                        "latency": vector.tobytes(),
                        **counts[(said, heard)],
                    }
                )
                if rng.random() < annotated:
                    scores = [int(s) for s in rng.integers(0, 6, 4)]
                    notes.append(
                        {
                            "turn": tid,
                            "user": user.id,
                            "pipeline": pipeline,
                            "stt_score": scores[0],
                            "llm_score": scores[1],
                            "tts_score": scores[2],
                            "overall_score": scores[3],
                            "corrected_transcript": said,
                        }
                    )
            bulk_insert(db.Conversation, conversations)
            bulk_insert(db.Turn, turns)
            bulk_insert(db.Media, media)
            bulk_insert(db.RunItem, results)
            bulk_insert(Annotation, notes)
            run.latency_keys = keys
            run.finished_at = now
            run.save()
        names.append(run.name)
        annotations += len(notes)
    preferences = _seed_preferences(rng, names, item_ids, user.id, preferred)
    return SeededRuns(dataset.name, names, items, annotations, preferences)


def _seed_preferences(
    rng: np.random.Generator, names: list[str], item_ids: list[int], user: int, share: float
) -> int:
    """One preference ("a", "tie" or "b") per pair of runs on a share of the items."""
    ids = [r.id for r in db.Run.select(db.Run.id).where(db.Run.name.in_(names))]
    rows = [
        {
            "user": user,
            "run_a": a,
            "run_b": b,
            "item": item,
            "choice": str(rng.choice(["a", "tie", "b"])),
            "shown": str(rng.choice(["ab", "ba"])),
        }
        for a, b in itertools.combinations(sorted(ids), 2)
        for item in item_ids
        if rng.random() < share
    ]
    with db.database.atomic():
        bulk_insert(Preference, rows)
    return len(rows)
