"""What one sample turn looks like: a spoken command, what the "STT" heard, the answer,
a latency record of the shape server/latency.py writes, media files, and spans."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from parley.audio import write_wav

ASSETS = Path(__file__).resolve().parent.parent / "parley" / "assets"
SPEECH = ASSETS / "turn_on_the_living_room_lamp.wav"
FRAME = ASSETS / "camera-frame.jpg"
COMMANDS = [
    ("turn on the living room lamp", "Done: the living room lamp is on."),
    ("what's the weather like tomorrow", "Tomorrow looks dry, with a high of fourteen degrees."),
    ("set a timer for ten minutes", "Timer set for ten minutes."),
    ("play some quiet jazz in the kitchen", "Playing quiet jazz in the kitchen."),
    ("how long does it take to boil an egg", "About seven minutes for a soft-boiled egg."),
    ("remind me to call mum at six", "I'll remind you to call mum at six."),
    ("what is on my calendar today", "You have a dentist appointment at three."),
    ("turn the heating down a little", "Heating set to nineteen degrees."),
]
MISHEARD = {
    "lamp": "lamb",
    "ten": "then",
    "jazz": "jams",
    "egg": "leg",
    "six": "sticks",
    "today": "to day",
    "down": "town",
    "weather": "whether",
}
PIPELINES = {  # name: (share, stt model ms, llm model ms, tts model ms, overhead scale)
    "local": (0.6, 140.0, 90.0, 45.0, 1.0),
    "openai": (0.25, 260.0, 320.0, 180.0, 3.0),
    "tiny": (0.15, 45.0, 25.0, 6.0, 0.8),
}


def latency_record(rng: np.random.Generator, pipeline: str) -> dict[str, float]:
    _, stt, llm, tts, scale = PIPELINES[pipeline]
    model = {
        s: float(rng.lognormal(np.log(m), 0.35))
        for s, m in (("stt", stt), ("llm", llm), ("tts", tts))
    }
    over = {
        s: float(rng.lognormal(np.log(scale * m), 0.6))
        for s, m in (("stt", 3.0), ("llm", 5.0), ("tts", 2.0))
    }
    over["send"] = float(rng.lognormal(np.log(0.5), 0.5))
    record = {"endpointing_ms": float(rng.normal(540.0, 15.0))}
    at = 0.0
    for stage, mark in (
        ("stt", "stt_done"),
        ("llm", "first_sentence"),
        ("tts", "tts_first_audio"),
        ("send", "first_audio_sent"),
    ):
        m = model.get(stage, 0.0)
        record.update(
            {
                f"{stage}_ms": m + over[stage],
                f"{stage}_model_ms": m,
                f"{stage}_overhead_ms": over[stage],
            }
        )
        at += m + over[stage]
        record[f"{mark}_ms"] = at
    record["llm_first_token_ms"] = record["stt_done_ms"] + 0.4 * record["llm_ms"]
    record["overhead_ms"] = sum(over.values())
    record["turn_total_ms"] = at + float(rng.uniform(800.0, 2500.0))
    record["voice_to_voice_ms"] = record["endpointing_ms"] + at + float(rng.normal(35.0, 5.0))
    return record


def misheard(rng: np.random.Generator, said: str) -> str:
    words = said.split()
    return " ".join(MISHEARD.get(w, w) if rng.random() < 0.25 else w for w in words)


def media_files(data_dir: Path, turn_id: str, rng: np.random.Generator) -> list[dict[str, Any]]:
    folder = data_dir / "turns" / "sample" / turn_id
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SPEECH, folder / "input.wav")
    t = np.arange(int(1.6 * 16000)) / 16000.0
    tone = 0.2 * np.sin(2 * np.pi * (220 + 60 * np.sin(3 * t)) * t) * (np.sin(np.pi * t / 1.6) ** 2)
    write_wav(folder / "output.wav", (tone * 32767).astype("<i2").tobytes(), 16000)
    shutil.copyfile(FRAME, folder / "frame-000.jpg")
    rel = f"turns/sample/{turn_id}"
    return [
        {
            "turn": turn_id,
            "kind": "input",
            "path": f"{rel}/input.wav",
            "sample_rate": 16000,
            "seconds": 3.0,
            "bytes": (folder / "input.wav").stat().st_size,
        },
        {
            "turn": turn_id,
            "kind": "output",
            "path": f"{rel}/output.wav",
            "sample_rate": 16000,
            "seconds": 1.6,
            "bytes": (folder / "output.wav").stat().st_size,
        },
        {
            "turn": turn_id,
            "kind": "frame",
            "path": f"{rel}/frame-000.jpg",
            "mime": "image/jpeg",
            "seconds": float(rng.uniform(0, 2)),
            "bytes": FRAME.stat().st_size,
        },
    ]


# Where the VAD found speech in the bundled clip (SPEECH), seconds into the file.
SPEECH_BOUNDS = {"speech_start_s": 0.25, "speech_end_s": 1.4}


def vad_outputs(rng: np.random.Generator, speech_seconds: float) -> dict[str, float]:
    """Turn.outputs["vad"] of a sample turn: speech after a 0.2 s pre-roll."""
    start = 0.2 + float(rng.uniform(0.0, 0.05))
    return {"speech_start_s": round(start, 3), "speech_end_s": round(start + speech_seconds, 3)}


def trace_spans(
    turn_id: str,
    trace_id: str,
    start: dt.datetime,
    rec: dict[str, float],
    speech_seconds: float = 1.5,
) -> list[dict[str, Any]]:
    """The spans of one turn, as the server, the STT worker and the VAD write them: time
    0 is the VAD's decision; the turn, its ``vad`` span and the streaming ``stt`` call
    start when speech started, ``speech_seconds`` + the endpointing before it."""
    t0 = int(start.replace(tzinfo=dt.UTC).timestamp() * 1e9)
    ms = 1_000_000
    speech_at = -(speech_seconds * 1000.0 + rec.get("endpointing_ms", 500.0))
    vad = {"parley.vad.speech_start_s": 10.0, "parley.vad.speech_end_s": 10.0 + speech_seconds}

    def span(
        name: str,
        service: str,
        parent: str,
        a: float,
        b: float,
        n: int,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "trace_id": trace_id,
            "span_id": f"{n:016x}",
            "parent_id": parent,
            "name": name,
            "service": service,
            "kind": "INTERNAL",
            "start_ns": t0 + int(a * ms),
            "end_ns": t0 + int(b * ms),
            "status": "OK",
            "attributes": {"parley.turn.id": turn_id, **(attributes or {})},
            "turn_id": turn_id,
        }

    return [
        span("turn", "parley-server", "", speech_at, rec["turn_total_ms"], 1),
        span("vad", "parley-server", f"{1:016x}", speech_at, 0.0, 6, vad),
        span("stt", "parley-server", f"{1:016x}", speech_at, rec["stt_done_ms"], 2),
        span("Stt/Transcribe", "parley-worker-stt", f"{2:016x}", 1.0, rec["stt_done_ms"] - 1, 3),
        span("llm", "parley-server", f"{1:016x}", rec["stt_done_ms"], rec["first_sentence_ms"], 4),
        span(
            "tts",
            "parley-server",
            f"{1:016x}",
            rec["first_sentence_ms"],
            rec["tts_first_audio_ms"],
            5,
        ),
    ]


def complete(record: dict[str, float]) -> dict[str, float]:
    """Failed turns stop after STT; their spans stop there too."""
    stt = record.get("stt_done_ms", 100.0)
    out = {"turn_total_ms": stt, "first_sentence_ms": stt, "tts_first_audio_ms": stt, **record}
    return {**out, "stt_done_ms": stt}
