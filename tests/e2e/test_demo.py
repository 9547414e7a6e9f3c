"""The README's main job, for real: `parley demo --pipeline tiny --json` starts the
server and three worker processes, streams a recording through them, and stores it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from parley import db

pytestmark = pytest.mark.slow


def test_demo_runs_a_spoken_turn_through_real_processes_and_stores_it(tmp_path: Path):
    env = dict(os.environ, PARLEY_HOME=str(tmp_path), PARLEY_SERVER_PORT="50151")
    # Ports of the tiny pool may be taken by a developer's own `parley up`; the demo
    # reuses healthy workers, which is fine for this test.
    out = tmp_path / "answer.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "demo", "--pipeline", "tiny", "--json", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert "NONSENSE" in summary["notice"]  # the tiny pipeline says what it is

    with wave.open(summary["output"], "rb") as answer:
        frames = answer.readframes(answer.getnframes())
        assert answer.getnframes() > answer.getframerate() * 0.1  # at least 100 ms
    assert max(frames) > 0  # not silence
    assert Path(summary["output"]) == out

    latency = summary["latency_ms"]
    for key in (
        "endpointing_ms",
        "stt_ms",
        "llm_ms",
        "tts_ms",
        "first_audio_sent_ms",
        "overhead_ms",
    ):
        assert latency[key] >= 0, key
    assert summary["voice_to_voice_ms"] > latency["endpointing_ms"]

    db.open_database(f"sqlite:///{tmp_path}/parley.db")
    with db.database.connection_context():
        turn = db.Turn.get_by_id(summary["turn_id"])
        assert turn.status == "done"
        assert turn.transcript == summary["transcript"] != ""
        assert turn.response == summary["response"] != ""
        # What the TTS was asked to say: the answer's sentences, as stored.
        assert turn.spoken == summary["spoken"] != []
        assert turn.latency["voice_to_voice_ms"] == pytest.approx(
            summary["voice_to_voice_ms"], abs=50
        )
        media = {m.kind: m for m in turn.media}
    assert set(media) == {"input", "output"}
    for item in media.values():
        path = tmp_path / "data" / item.path
        assert path.stat().st_size == item.bytes > 44
    assert media["input"].seconds > 1.0  # the spoken command, pre-roll included
    assert turn.trace_id == summary["trace_id"] != ""
    db.database.close()

    # The latency record is complete and in the order things happen.
    marks = ["stt_done_ms", "llm_first_token_ms", "first_sentence_ms", "tts_first_audio_ms"]
    marks += ["first_audio_sent_ms", "turn_total_ms"]
    assert [latency[m] for m in marks] == sorted(latency[m] for m in marks)

    # One trace spans the edge, the server and the three workers, parented correctly.
    shown = subprocess.run(
        [sys.executable, "-m", "parley", "trace", "show", summary["trace_id"], "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    check_trace(json.loads(shown.stdout))


def check_trace(spans: list[dict]) -> None:
    by_id = {s["span_id"]: s for s in spans}
    named = {(s["service.name"], s["name"]): s for s in spans}
    turn = named[("parley-server", "turn")]
    assert turn["parent_id"] == ""
    for name in ("vad", "stt", "llm", "tts"):
        assert named[("parley-server", name)]["parent_id"] == turn["span_id"], name
    for name in ("edge.capture", "edge.playback"):
        assert named[("parley-edge", name)]["parent_id"] == turn["span_id"], name
    for stage, method in (
        ("stt", "Stt/Transcribe"),
        ("llm", "Llm/Generate"),
        ("tts", "Tts/Synthesize"),
    ):
        name = f"/parley.workers.v1.{method}"
        client = named[("parley-server", name)]
        worker = named[(f"parley-worker-{stage}", name)]
        assert (client["kind"], worker["kind"]) == ("CLIENT", "SERVER")
        assert client["parent_id"] == named[("parley-server", stage)]["span_id"]
        assert by_id[worker["parent_id"]] is client  # the worker's span is the call's child
        assert worker["attributes"]["parley.engine"]
    llm = named[("parley-server", "llm")]["attributes"]
    assert llm["gen_ai.usage.output_tokens"] > 0 and llm["parley.llm.ttft_s"] > 0
    assert named[("parley-server", "tts")]["attributes"]["parley.tts.ttfb_s"] > 0
    assert turn["attributes"]["parley.turn.was_interrupted"] is False


def test_demo_with_an_unknown_pipeline_fails_clearly(tmp_path: Path):
    env = dict(os.environ, PARLEY_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "demo", "--pipeline", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown pipeline 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
