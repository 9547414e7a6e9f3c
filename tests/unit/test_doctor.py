"""`parley doctor`'s checks of a pipeline, run directly (the command itself, in a
subprocess, is in tests/integration/test_bad_input_cli.py and test_first_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.commands.doctor import check_pipeline, turn_model_problem
from parley.config import Config, load_config


def smart_turn_config(tmp_path: Path, model: Path) -> Config:
    toml = tmp_path / "parley.toml"
    toml.write_text(f'[pipelines.tiny.turn]\nstrategy = "smart_turn"\nmodel_path = "{model}"\n')
    return load_config(toml, env={"PARLEY_HOME": str(tmp_path / "home")})


@pytest.fixture(autouse=True)
def _fresh() -> None:
    turn_model_problem.cache_clear()


def test_doctor_refuses_an_end_of_turn_model_that_is_not_onnx(tmp_path: Path) -> None:
    model = tmp_path / "smart-turn-v3.2-cpu.onnx"
    model.write_bytes(b"<html>not found</html>")  # what a proxy's error page leaves
    check = check_pipeline(smart_turn_config(tmp_path, model), "tiny")
    assert check.status == "fail" and check.blocks  # tiny is the default pipeline
    assert "end-of-turn model" in check.detail
    assert str(model) in check.detail
    assert "parley models pull --only turn" in check.fix


def test_doctor_refuses_another_onnx_model_as_the_end_of_turn_model(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from server.vad import default_model_path

    # The Silero VAD: a valid ONNX file, but not the Smart Turn model.
    check = check_pipeline(smart_turn_config(tmp_path, default_model_path()), "tiny")
    assert check.status == "fail"
    assert "not a Smart Turn v3 model" in check.detail


def test_doctor_leaves_silence_pipelines_alone(tmp_path: Path) -> None:
    model = tmp_path / "smart-turn-v3.2-cpu.onnx"
    model.write_bytes(b"junk")
    config = smart_turn_config(tmp_path, model)
    other = sorted(n for n in config.pipelines if config.turn_for(n).strategy == "silence")[0]
    assert "end-of-turn" not in check_pipeline(config, other).detail


def test_a_missing_model_at_a_path_of_ones_own_is_not_sent_to_models_pull(
    tmp_path: Path,
) -> None:
    check = check_pipeline(smart_turn_config(tmp_path, Path("/x/nosuch.onnx")), "tiny")
    assert check.status == "fail"
    assert check.detail == "model files missing (/x/nosuch.onnx)"  # the tiny ones not shown
    assert check.fix.startswith("`parley models pull` does not write /x/nosuch.onnx")
    assert "copy smart-turn-v3.2-cpu.onnx there, or leave model_path empty" in check.fix
    assert "run `parley models pull" not in check.fix


def test_the_end_of_turn_model_fix_is_given_once(tmp_path: Path) -> None:
    model = tmp_path / "smart-turn-v3.2-cpu.onnx"
    model.write_bytes(b"junk")
    check = check_pipeline(smart_turn_config(tmp_path, model), "tiny")
    assert "parley models pull" not in check.detail  # the problem; the fix says what to do
    assert check.fix.count("parley models pull --only turn") == 1
