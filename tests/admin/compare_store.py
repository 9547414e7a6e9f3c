"""A small store of replay runs whose figures are worked out by hand: four recordings of
the dataset ``kitchen`` answered by three pipelines, stored through the replay's own
recording path (research/runs.py ``record``), with real WAV files for the recordings
and the answers so pages can play them.

Hand-computed figures (words after normalising: lower case, no punctuation):

- lamp (tags lights), "turn on the lamp" (4 words): run-local exact; run-cloud "turn on
  a lamp" (1 substitution); run-edge failed (an LLM error).
- timer (timers), "set a timer for ten minutes" (6): local exact; cloud "set timer for
  ten minutes" (1 deletion); edge "set a timer for two minutes" (1 substitution).
- hall (lights), "switch off the hall light" (5): local exact; cloud "... light now"
  (1 insertion); edge "switch off hall light" (1 deletion).
- song: no reference; every run answered it.

WER: run-local 0/15 = 0; run-cloud 3/15 = 0.2; run-edge 2/11 (timer + hall).
Voice-to-voice (ms): local 400, 600, 800, 1000 (nearest-rank p50 600, p90 1000); cloud
300, 500, 700, 900 (p50 500, p90 900); edge -, 350, 450, 550 (p50 450, p90 550).
"""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.headless import TurnReport
from parley import db
from research.runs import record
from tests.admin.conftest import add_turn

ITEMS = (  # key, reference, tags
    ("lamp", "Turn on the lamp.", ["lights"]),
    ("timer", "Set a timer for ten minutes.", ["timers"]),
    ("hall", "Switch off the hall light.", ["lights"]),
    ("song", "", []),
)
RUNS = {  # run: (pipeline, per item (transcript or None for a failed turn), v2v ms)
    "run-local": (
        "local",
        ["turn on the lamp", "set a timer for ten minutes", "switch off the hall light", "play"],
        [400.0, 600.0, 800.0, 1000.0],
    ),
    "run-cloud": (
        "cloud",
        ["turn on a lamp", "set timer for ten minutes", "switch off the hall light now", "play"],
        [300.0, 500.0, 700.0, 900.0],
    ),
    "run-edge": (
        "edge",
        [None, "set a timer for two minutes", "switch off hall light", "play"],
        [0.0, 350.0, 450.0, 550.0],
    ),
}
WER = {"run-local": 0.0, "run-cloud": 3 / 15, "run-edge": 2 / 11}
V2V = {"run-local": (600.0, 1000.0), "run-cloud": (500.0, 900.0), "run-edge": (450.0, 550.0)}


WORD = {"run-local": "Sure", "run-cloud": "Okay", "run-edge": "Done"}  # names no run


def answer(run: str, key: str) -> str:
    """The answer text run ``run`` gave for item ``key`` (distinct per run and item,
    without naming the run or its pipeline, as a blind page must show it)."""
    return f"{WORD[run]}, {key} handled."


def write_wav(path: Path, seconds: float = 0.6, hz: float = 440.0) -> None:
    """A short mono 16 kHz tone, so a browser has something to play."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000.0
    samples = (0.2 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())


@dataclass(frozen=True)
class Seeded:
    dataset: int
    runs: dict[str, int]  # name: id
    items: dict[str, int]  # key: id
    turns: dict[tuple[str, str], str]  # (run, key): answering turn id


def seed(data_dir: Path) -> Seeded:
    """The dataset, its files and the three runs, in the open database."""
    with db.database.connection_context():
        dataset = db.Dataset.create(name="kitchen", source="tests")
        items = []
        for position, (key, reference, tags) in enumerate(ITEMS):
            relative = f"datasets/kitchen/v1/{key}.wav"
            write_wav(data_dir / relative, hz=300.0 + 50 * position)
            items.append(
                db.DatasetItem.create(
                    dataset=dataset,
                    position=position,
                    key=key,
                    audio_path=relative,
                    sample_rate=16000,
                    seconds=0.6,
                    reference_transcript=reference,
                    tags=tags,
                )
            )
    runs: dict[str, int] = {}
    turns: dict[tuple[str, str], str] = {}
    for name, (pipeline, heard, v2v) in RUNS.items():
        with db.database.connection_context():
            run = db.Run.create(name=name, dataset=dataset, pipeline=pipeline, pace="realtime")
        reports: list[list[TurnReport]] = []
        for item, text, ms in zip(items, heard, v2v, strict=True):
            turn_id = f"{name}-{item.key}"
            latency = {"voice_to_voice_ms": ms, "first_audio_sent_ms": ms / 2}
            add_turn(
                turn_id,
                pipeline=pipeline,
                device="parley-replay",
                status="done" if text is not None else "error",
                transcript=text or "",
                response=answer(name, str(item.key)) if text is not None else "",
                error="" if text is not None else "boom",
                latency=latency if text is not None else {},
                trace_id=hashlib.md5(turn_id.encode()).hexdigest(),
            )
            if text is not None:
                relative = f"turns/{turn_id}/output.wav"
                write_wav(data_dir / relative, hz=500.0 + 10 * len(reports))
                with db.database.connection_context():
                    db.Media.create(turn=turn_id, kind="output", path=relative)
            turns[(name, str(item.key))] = turn_id
            reports.append([TurnReport(turn_id=turn_id, latency_ms={"x": 1.0})])
        with db.database.connection_context():
            record(run, items, reports)
        runs[name] = run.id
    return Seeded(dataset.id, runs, {str(i.key): i.id for i in items}, turns)
