"""`parley bench endpointing`'s inputs, checked before anything runs: the labels file
and --strategy (the bench itself, on the real model, is tests/engines/test_smart_turn.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from parley.commands.bench_endpointing import LABELS, read_labels
from parley.errors import ParleyError

WAV = Path(__file__).resolve().parents[2] / "parley" / "assets" / "turn_on_the_living_room_lamp.wav"
GOOD = {"file": "lamp.wav", "kind": "real", "turns": [{"end_s": 1.45}]}


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    shutil.copy(WAV, tmp_path / "lamp.wav")
    return tmp_path / "labels.json"


def test_the_bundled_labels_are_valid() -> None:
    assert len(read_labels(LABELS)) > 3


def test_a_valid_labels_file(labels: Path) -> None:
    labels.write_text(json.dumps({"clips": [GOOD]}))
    (label,) = read_labels(labels)
    assert (label.file, label.kind, label.ends_s) == ("lamp.wav", "real", [1.45])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json at all", "not JSON"),
        ("\xff\xfe", "not JSON"),
        ("[]", 'a "clips" list'),
        ("{}", 'a "clips" list'),
        ('{"clips": {}}', 'a "clips" list'),
        ('{"clips": []}', '"clips" is empty'),
        ('{"clips": [3]}', "clip 1 is not an object"),
        ('{"clips": [{"turns": []}]}', 'clip 1 has no "file"'),
        ('{"clips": [{"file": "", "turns": []}]}', 'clip 1 has no "file"'),
        ('{"clips": [{"file": "gone.wav", "turns": []}]}', "clip 1 (gone.wav): no audio file"),
        ('{"clips": [{"file": "lamp.wav"}]}', '"turns" must be a list'),
        ('{"clips": [{"file": "lamp.wav", "turns": [{}]}]}', '"turns" must be a list'),
        ('{"clips": [{"file": "lamp.wav", "turns": [{"end_s": -1}]}]}', '"turns" must be'),
        ('{"clips": [{"file": "lamp.wav", "turns": [{"end_s": "1"}]}]}', '"turns" must be'),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 999}]}]}',
            "clip 1 (lamp.wav): turn 1 ends at 999 s, after the audio, which lasts",
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1}, {"end_s": 0.5}]}]}',
            "clip 1 (lamp.wav): turn 2 ends at 0.5 s, not after turn 1 (1 s)",
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1}, {"end_s": 1}]}]}',
            "turn 2 ends at 1 s, not after turn 1 (1 s)",
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1, "pauses_s": "x"}]}]}',
            'clip 1 (lamp.wav): turn 1: "pauses_s" must be a list of [start, end] pairs',
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1, "pauses_s": [[0.5]]}]}]}',
            '"pauses_s" must be a list of [start, end] pairs',
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1, "pauses_s": [[0.6, 0.2]]}]}]}',
            '"pauses_s" must be a list of [start, end] pairs',
        ),
        (
            '{"clips": [{"file": "lamp.wav", "turns": [{"end_s": 1, "pauses_s": [[0.5, 1.2]]}]}]}',
            'turn 1: a pause in "pauses_s" ends after the turn (1 s)',
        ),
        (
            '{"clips": [{"file": "lamp.wav", "kind": 3, "turns": [{"end_s": 1}]}]}',
            'clip 1 (lamp.wav): "kind" must be a string, not 3',
        ),
    ],
)
def test_a_malformed_labels_file_names_the_file_and_the_problem(
    labels: Path, content: str, problem: str
) -> None:
    labels.write_bytes(content.encode("latin-1"))
    with pytest.raises(ParleyError) as info:
        read_labels(labels)
    message = str(info.value)
    assert message.startswith(f"--labels {labels}: ")
    assert problem in message
    assert "\n" not in message


def test_the_second_bad_clip_is_named_by_its_number(labels: Path) -> None:
    labels.write_text(json.dumps({"clips": [GOOD, {**GOOD, "file": "other.wav"}]}))
    with pytest.raises(ParleyError, match=r"clip 2 \(other.wav\): no audio file"):
        read_labels(labels)


def test_a_missing_labels_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ParleyError, match=r"no labelled set at .*make_endpointing_set"):
        read_labels(tmp_path / "labels.json")


def test_an_audio_file_that_is_not_sound_is_named(labels: Path) -> None:
    from parley.commands.bench_endpointing import load_clips

    (labels.parent / "lamp.wav").write_text("not a wav")
    labels.write_text(json.dumps({"clips": [GOOD]}))
    with pytest.raises(ParleyError, match=r"lamp.wav is not a sound file that can be read"):
        load_clips(labels)


def test_the_command_reports_bad_labels_in_one_line(
    labels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from parley import cli

    monkeypatch.setenv("PARLEY_HOME", str(labels.parent / "home"))
    monkeypatch.chdir(labels.parent)
    labels.write_text("[]")
    assert cli.main(["bench", "endpointing", "--labels", str(labels)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f'parley: error: --labels {labels}: expected a JSON object with a "clips" '
        "list (scripts/make_endpointing_set.py)"
    ]


@pytest.mark.parametrize("spec", ["", " ", ",", " , "])
def test_an_empty_strategy_is_refused_not_read_as_the_default(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from parley import cli
    from parley.commands.bench_endpointing import parse_strategies
    from parley.config import Config

    with pytest.raises(ParleyError, match="name at least one strategy"):
        parse_strategies(spec, Config(), None)
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "endpointing", "--strategy", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["parley: error: --strategy: name at least one strategy"]


def test_a_bench_with_no_latency_to_rank_says_so_not_none(
    labels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from parley import cli
    from parley.commands import bench_endpointing

    def no_true_end(strategies: object, clips: object, model: object, late_ms: float) -> dict:
        latency = {"p50": None, "p90": None, "max": None}
        strategy = {"premature_ends": 2, "late_ends": 1, "end_of_speech_to_decision_ms": latency}
        return {"bench": "endpointing", "strategies": {"silence:500": strategy}}

    monkeypatch.setattr(bench_endpointing, "run_endpointing", no_true_end)
    monkeypatch.setenv("PARLEY_HOME", str(labels.parent / "home"))
    monkeypatch.chdir(labels.parent)
    labels.write_text(json.dumps({"clips": [GOOD]}))
    args = ["bench", "endpointing", "--labels", str(labels), "--strategy", "silence:500"]
    assert cli.main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "None" not in last
    assert last.endswith(
        "premature 2, late 1, p50 -, p90 - (no turn ended on its own: no latency to rank)"
    )


def test_an_unreadable_model_gets_the_same_hint_as_doctor(
    labels: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    from parley import cli
    from parley.config import TURN_MODEL_FIX

    monkeypatch.setenv("PARLEY_HOME", str(labels.parent / "home"))
    monkeypatch.chdir(labels.parent)
    labels.write_text(json.dumps({"clips": [GOOD]}))
    model = labels.parent / "model.onnx"
    model.write_bytes(b"<html>not found</html>")
    args = ["bench", "endpointing", "--labels", str(labels), "--model", str(model)]
    assert cli.main([*args, "--strategy", "smart_turn"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert f"{model} is not a readable ONNX model" in err
    assert err.endswith(f": {TURN_MODEL_FIX}")
    assert "parley models pull --only turn" in TURN_MODEL_FIX
