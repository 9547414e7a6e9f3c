"""`parley bench turn --settings`: the settings it accepts, the model check, and the
per-setting figures and ratios."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from parley.commands.bench_turn_taking import (
    TurnSetting,
    check_models,
    parse_settings,
    ratios,
    voice_to_voice,
)
from parley.config import Config, TurnConfig
from parley.errors import ParleyError


def test_settings_are_parsed_into_the_servers_environment() -> None:
    plain, early, smart = parse_settings("silence@500, silence@300+preemptive,smart_turn")
    assert plain == TurnSetting("silence@500", "silence", False, 500)
    assert early.env() == {
        "PARLEY_TURN_STRATEGY": "silence",
        "PARLEY_TURN_PREEMPTIVE": "true",
        "PARLEY_VAD_MIN_SILENCE_MS": "300",
    }
    assert smart.min_silence_ms is None and "PARLEY_VAD_MIN_SILENCE_MS" not in smart.env()


@pytest.mark.parametrize("text", ["silence@", "loud", "silence+eager", "silence,silence", ""])
def test_a_bad_setting_is_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ParleyError, match=r"STRATEGY|twice"):
        parse_settings(text)


def test_smart_turn_needs_its_model_file(tmp_path: Path) -> None:
    config = Config(home=tmp_path)
    with pytest.raises(ParleyError, match="parley models pull"):
        check_models(config, parse_settings("silence@500,smart_turn+preemptive"))
    check_models(config, parse_settings("silence@500"))  # no model needed
    model = tmp_path / "smart-turn.onnx"
    model.write_bytes(b"onnx")
    config = dataclasses.replace(config, turn=TurnConfig(model_path=str(model)))
    check_models(config, parse_settings("smart_turn+preemptive"))


def test_voice_to_voice_figures_and_ratios() -> None:
    plain = [{"endpointing_ms": 544.0, "edge_voice_to_voice_ms": v} for v in (580.0, 600.0)]
    early = [
        {
            "endpointing_ms": 544.0,
            "edge_voice_to_voice_ms": v,
            "speculation_committed_ms": 0.1,
            "confirm_ms": 300.0,
            "speculations_discarded": 1.0,
            "speculation_model_wasted_ms": 2.5,
        }
        for v in (551.0, 570.0)
    ]
    a, b = voice_to_voice(plain), voice_to_voice(early)
    assert a["voice_to_voice_ms"]["p50"] == 580.0 and a["confirm_wait_ms"] == {}
    assert b["speculation"] == {"committed_turns": 2, "discarded": 2, "wasted_model_ms": 5.0}
    columns = [{"setting": "silence@500", **a}, {"setting": "silence@500+preemptive", **b}]
    assert ratios(columns) == {"silence@500+preemptive / silence@500": {"p50": 0.95, "p90": 0.95}}
