"""Smart Turn v3.2 on real speech: the model file from the pipecat-ai wheel (cached, see
tests/smart_turn_model.py), features of the model's shape, clear errors for a missing or
wrong file, batching, the real detector ending turns by the model, and the bench."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from parley.commands.bench_endpointing import (
    Tally,
    load_clips,
    parse_strategies,
    run_clip,
    run_endpointing,
)
from parley.config import Config, TurnConfig, VadConfig
from parley.errors import ParleyError
from server.smart_turn import CLIP_SAMPLES, SmartTurn, SmartTurnError, clip
from server.vad import SileroVad, default_model_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file() -> Path:
    from tests.smart_turn_model import smart_turn_model

    try:
        return smart_turn_model()
    except RuntimeError as exc:  # no package index here
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model(model_file: Path) -> SmartTurn:
    return SmartTurn(model_file)


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


def test_features_have_the_models_input_shape(model: SmartTurn) -> None:
    rng = np.random.default_rng(1)
    for seconds in (0.3, 8.0, 11.0):
        audio = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
        features = model.features(audio)
        assert features.shape == (80, 800) and features.dtype == np.float32
        assert np.isfinite(features).all()
    short = clip(np.ones(100, np.float32))
    assert short.shape == (CLIP_SAMPLES,) and short[:-100].sum() == 0 and short[-100:].all()
    long = clip(np.arange(CLIP_SAMPLES + 5, dtype=np.float32))
    assert long[0] == 5  # the last 8 s are kept


def test_missing_model_names_models_pull(tmp_path: Path) -> None:
    with pytest.raises(SmartTurnError, match=r"parley models pull --only turn"):
        SmartTurn(tmp_path / "smart-turn-v3.2-cpu.onnx")


def test_another_onnx_model_is_refused_saying_what_it_expected() -> None:
    with pytest.raises(SmartTurnError, match=r"not a Smart Turn v3 model.*input_features"):
        SmartTurn(default_model_path())  # the Silero VAD: an ONNX file, the wrong model


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "smart-turn-v3.2-cpu.onnx"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(SmartTurnError, match="not a readable ONNX model"):
        SmartTurn(bad)


def test_a_batch_equals_one_clip_at_a_time(model: SmartTurn) -> None:
    (lamp,) = load_clips(limit=["lamp.wav"])
    (jfk,) = load_clips(limit=["jfk.flac"])
    clips = [lamp.audio[:24000], jfk.audio[: 16000 * 3], jfk.audio, np.zeros(8000, np.float32)]
    batch = model.probabilities(clips)
    alone = np.array([model.probability(c) for c in clips])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    assert ((batch >= 0) & (batch <= 1)).all()
    assert model.probability(lamp.audio[: int(1.7 * 16000)]) > 0.9  # the whole command


def _ends(strategy: str, name: str, vad: SileroVad, model: SmartTurn) -> list:
    (chosen,) = parse_strategies(strategy, Config(), None)
    (clip_,) = load_clips(limit=[name])
    return run_clip(clip_, chosen, vad, model if "smart" in strategy else None, Tally())


def test_smart_turn_ends_the_lamp_turn_with_less_silence_than_silence_500(
    vad: SileroVad, model: SmartTurn
) -> None:
    (smart,) = _ends("smart_turn", "lamp.wav", vad, model)
    (silence,) = _ends("silence:500", "lamp.wav", vad, model)
    assert smart.by == "model" and smart.probability is not None and smart.probability >= 0.5
    assert smart.end_s == silence.end_s  # the same end of speech, decided sooner
    # audio silence at the decision (the bench adds the model's time to decided_s)
    assert smart.decided_s - smart.end_s < 0.5 + 0.3  # 200 ms check + the model's time
    assert silence.decided_s - silence.end_s >= 0.5


def test_smart_turn_ends_fewer_turns_at_jfks_mid_sentence_pauses_than_silence_300(
    vad: SileroVad, model: SmartTurn
) -> None:
    (jfk,) = load_clips(limit=["jfk.flac"])
    end_of_sentence = jfk.ends_s[0] - 0.25

    def mid_sentence(ends: list) -> int:
        return sum(e.end_s < end_of_sentence for e in ends)

    smart = mid_sentence(_ends("smart_turn", "jfk.flac", vad, model))
    silence = mid_sentence(_ends("silence:300", "jfk.flac", vad, model))
    assert silence == 3  # all three pauses
    assert smart < silence


def test_bench_on_a_small_set(model_file: Path) -> None:
    strategies = parse_strategies("silence:200,silence:500,smart_turn", Config(), None)
    clips = load_clips(limit=["lamp.wav", "jfk.flac", "espeak_wondering"])
    result = run_endpointing(strategies, clips, model_file, late_ms=1000.0)
    json.dumps(result)  # plain data
    assert result["clips"] == 3 and result["turns"] == 3
    assert list(result["strategies"]) == ["silence:200", "silence:500", "smart_turn"]
    assert result["reference"] == "silence:500"
    for name, figures in result["strategies"].items():
        assert figures["true_ends"] + figures["missed_turns"] == 3, name
        assert set(figures["clips"]) == {c.name for c in clips}
    s200, s500, smart = (
        result["strategies"][n] for n in ("silence:200", "silence:500", "smart_turn")
    )
    assert s200["premature_ends"] >= s500["premature_ends"] >= 1  # jfk's pauses
    assert smart["premature_ends"] < s200["premature_ends"]
    p50 = {n: r["end_of_speech_to_decision_ms"]["p50"] for n, r in result["strategies"].items()}
    assert p50["silence:200"] < p50["silence:500"]
    assert smart["model_ms"]["p50"] > 0
    assert result["ratios"]["silence:500"]["latency_p50"] == 1.0


def test_pipeline_turn_override_and_model_path(tmp_path: Path) -> None:
    from parley.config import load_config

    path = tmp_path / "parley.toml"
    path.write_text(
        '[turn]\ncheck_after_ms = 150\n[pipelines.tiny.turn]\nstrategy = "smart_turn"\n'
        "threshold = 0.7\n"
    )
    config = load_config(path, env={"PARLEY_HOME": str(tmp_path)})
    tiny = config.turn_for("tiny")
    assert (tiny.strategy, tiny.threshold, tiny.check_after_ms) == ("smart_turn", 0.7, 150)
    assert config.turn.strategy == "silence"
    assert config.turn_model_path(tiny) == tmp_path / "models" / "smart-turn-v3.2-cpu.onnx"
    custom = dataclasses.replace(tiny, model_path=str(tmp_path / "m.onnx"))
    assert config.turn_model_path(custom) == tmp_path / "m.onnx"
    path.write_text('[pipelines.tiny.turn]\nstrategy = "guess"\n')
    with pytest.raises(Exception, match=r"\[pipelines.tiny.turn\].*strategy"):
        load_config(path, env={"PARLEY_HOME": str(tmp_path)})


def test_turn_config_defaults_keep_silence_endpointing(vad: SileroVad) -> None:
    """A session's default TurnConfig (silence) ends turns exactly as before: no checks."""
    (lamp,) = load_clips(limit=["lamp.wav"])
    from server.turns import TurnDetector, TurnPaused

    detector = TurnDetector(VadConfig(), vad, 16000, TurnConfig())
    events = detector.feed(lamp.audio) + detector.flush()
    assert not [e for e in events if isinstance(e, TurnPaused)]


@pytest.mark.parametrize("spec", ["silence:0", "smart_turn:0", "silence:-5"])
def test_a_strategy_with_no_milliseconds_is_refused(spec: str) -> None:
    with pytest.raises(ParleyError, match="positive"):
        parse_strategies(spec, Config(), None)
