"""Plausible turns, annotations, groups and spans for benchmarks, screenshots and demos.

`parley bench admin` seeds a scratch database with it; `parley admin seed-sample` seeds
the configured store for trying the bench (and refuses one that already holds turns).
Latency records have the shape server/latency.py writes; annotators score a hidden
per-turn quality with personal noise (so agreement is high but not perfect), and correct
the transcripts the "STT" got wrong; the oldest turns are annotated by the most people,
as the queue hands them out oldest first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from admin.auth import hash_password
from admin.models import Annotation, GroupAnnotation, TurnGroup, TurnGroupMember, User, bulk_insert
from admin.sample_turns import (
    COMMANDS,
    PIPELINES,
    SPEECH_BOUNDS,
    complete,
    latency_record,
    media_files,
    misheard,
    trace_spans,
    vad_outputs,
)
from admin.transcripts import edit_counts
from parley import db

DEVICES = ("kitchen-pi", "office-pi", "hall-pi", "bedroom-pi", "garage-pi")
ANNOTATOR_SHARE = (0.8, 0.5, 0.3, 0.15)  # of the oldest turns each annotator has done
PASSWORD = "sample-password"


@dataclass(frozen=True)
class Seeded:
    turns: int
    annotations: int
    groups: int
    spans: int
    users: list[str]


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    bulk_insert(model, rows)


def seed(
    turns: int,
    *,
    data_dir: Path | None = None,
    media_turns: int = 0,
    spans: bool = True,
    annotators: int = 3,
    seed_value: int = 0,
    now: dt.datetime | None = None,
) -> Seeded:
    """Add ``turns`` turns (with conversations, annotations, groups and spans) to the
    open database; the ``media_turns`` oldest get audio and a frame in ``data_dir``."""
    rng = np.random.default_rng(seed_value)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    hashed = hash_password(PASSWORD)
    names = ["alice", "bob", "carol", "dave"][:annotators]
    with db.database.atomic():
        users = [
            User.get_or_none(User.name == n)
            or User.create(name=n, password_hash=hashed, role="admin" if i == 0 else "annotator")
            for i, n in enumerate(names)
        ]
        for device in DEVICES:
            db.Device.get_or_create(id=device)
    pipelines, shares = list(PIPELINES), np.array([p[0] for p in PIPELINES.values()])
    start = now - dt.timedelta(days=60)
    conversations: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    truth: dict[str, tuple[str, str, float]] = {}  # turn id: (said, pipeline, answer quality)
    while len(rows) < turns:
        pipeline = pipelines[int(rng.choice(len(pipelines), p=shares / shares.sum()))]
        cid = str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | len(conversations)))
        began = start + dt.timedelta(seconds=float(rng.uniform(0, 60 * 86400)))
        conversations.append(
            {
                "id": cid,
                "device": DEVICES[len(conversations) % len(DEVICES)],
                "pipeline": pipeline,
                "started_at": began,
            }
        )
        for position in range(min(int(rng.integers(1, 9)), turns - len(rows))):
            said, answer = COMMANDS[int(rng.integers(len(COMMANDS)))]
            heard = misheard(rng, said)
            status = str(rng.choice(["done", "failed", "interrupted"], p=[0.93, 0.04, 0.03]))
            record = latency_record(rng, pipeline)
            speech = float(rng.uniform(1.2, 4.0))
            tid = str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | len(rows)))
            row = {
                "id": tid,
                "conversation": cid,
                "position": position,
                "pipeline": pipeline,
                "created_at": began + dt.timedelta(seconds=25 * position),
                "status": status,
                "transcript": heard,
                "response": answer if status != "failed" else "",
                "speech_seconds": speech,
                "outputs": {"vad": vad_outputs(rng, speech)},
                "latency": record,
                "trace_id": f"{int(rng.integers(1 << 62)):016x}{len(rows) + 1:016x}",
            }
            if not spans:
                row["trace_id"] = ""
            if status == "failed":
                row.update(error="llm worker unavailable", error_stage="llm")
                row["latency"] = {k: v for k, v in record.items() if k.startswith(("stt", "end"))}
            rows.append(row)
            quality = {"local": 3.6, "openai": 4.3, "tiny": 1.2}[pipeline]
            truth[tid] = (said, pipeline, quality + float(rng.normal(0, 0.7)))
    with db.database.atomic():
        _insert(db.Conversation, conversations)
        _insert(db.Turn, rows)
    annotations = _annotate(rng, rows, truth, users)
    groups = _groups(rng, rows, users)
    span_count = 0
    if spans:
        span_rows = [
            s
            for r in rows
            for s in trace_spans(
                r["id"], r["trace_id"], r["created_at"], complete(r["latency"]), r["speech_seconds"]
            )
        ]
        with db.database.atomic():
            _insert(db.Span, span_rows)
        span_count = len(span_rows)
    if data_dir is not None and media_turns:
        oldest = sorted(rows, key=lambda r: r["created_at"])[:media_turns]  # the queue's first
        media = [m for r in oldest for m in media_files(data_dir, r["id"], rng)]
        with db.database.atomic():
            _insert(db.Media, media)
            for r in oldest:  # their audio is the bundled clip: its speech bounds
                db.Turn.update(outputs={"vad": SPEECH_BOUNDS}).where(
                    db.Turn.id == r["id"]
                ).execute()
    return Seeded(len(rows), annotations, groups, span_count, names)


def _annotate(
    rng: np.random.Generator,
    rows: list[dict[str, Any]],
    truth: dict[str, tuple[str, str, float]],
    users: list[User],
) -> int:
    done = sorted((r for r in rows if r["status"] == "done"), key=lambda r: r["created_at"])
    cache: dict[tuple[str, str], Any] = {}
    out = []
    for j, user in enumerate(users):
        share = ANNOTATOR_SHARE[j % len(ANNOTATOR_SHARE)]
        for row in done[: int(share * len(done))]:
            said, pipeline, quality = truth[row["id"]]
            key = (said, row["transcript"])
            if key not in cache:
                cache[key] = edit_counts(said, row["transcript"])
            counts = cache[key]
            stt_q = 5.0 - 1.5 * (counts.word_errors if counts else 0)
            noise = rng.normal(0, 0.5, 4)
            scores = [
                min(5, max(0, round(q + n)))
                for q, n in zip(
                    (stt_q, quality, quality + 0.5, (stt_q + 2 * quality) / 3), noise, strict=True
                )
            ]
            out.append(
                {
                    "turn": row["id"],
                    "user": user.id,
                    "pipeline": pipeline,
                    "stt_score": scores[0],
                    "llm_score": scores[1],
                    "tts_score": scores[2],
                    "overall_score": scores[3],
                    "corrected_transcript": said,
                    "transcript_state": "edited" if counts.char_errors else "confirmed",
                    "done": True,
                    "word_errors": counts.word_errors,
                    "word_count": counts.word_count,
                    "char_errors": counts.char_errors,
                    "char_count": counts.char_count,
                    "created_at": row["created_at"],
                    "updated_at": row["created_at"],
                }
            )
    with db.database.atomic():
        _insert(Annotation, out)
    return len(out)


def _groups(rng: np.random.Generator, rows: list[dict[str, Any]], users: list[User]) -> int:
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_conversation.setdefault(row["conversation"], []).append(row)
    chosen = [turns for turns in by_conversation.values() if len(turns) >= 3]
    chosen = chosen[: max(1, len(rows) // 100)]
    with db.database.atomic():
        for i, turns in enumerate(chosen):
            group = TurnGroup.create(
                name=f"conversation {i + 1} ({turns[0]['pipeline']})",
                description="a whole conversation",
                created_by=users[0].id,
            )
            _insert(
                TurnGroupMember,
                [{"group": group.id, "turn": t["id"], "position": t["position"]} for t in turns],
            )
            base = float(rng.uniform(1.5, 4.5))
            _insert(
                GroupAnnotation,
                [
                    {
                        "group": group.id,
                        "user": u.id,
                        "comment": "",
                        "score": min(5, max(0, round(base + rng.normal(0, 0.5)))),
                    }
                    for u in users[:2]
                ],
            )
    return len(chosen)
