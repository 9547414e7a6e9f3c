"""`parley bench load` against a real server (instant engines in this process)."""

from __future__ import annotations

import os

import pytest

from parley.cli import build_parser
from parley.commands.bench_load import measure
from tests.integration.conftest import Stack
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine


@pytest.mark.timeout(120)
async def test_load_on_a_running_server_answers_every_turn(stack: Stack) -> None:
    config = await stack.start(
        {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}
    )
    argv = f"bench load --server {stack.address} --pipeline test --streams 4 --seconds 8"
    args = build_parser().parse_args([*argv.split(), "--gap-s", "1", "--chunk-ms", "60"])
    result = await measure(args, config)
    assert (result["server"], result["chunk_ms"], result["turns_per_cycle"]) == ("external", 60, 1)
    (step,) = result["steps"]
    # 8 s of 4 s cycles at random phases: every stream speaks once or twice
    assert 4 <= step["turns"]["expected"] <= 8
    assert step["turns"]["answered"] == step["turns"]["detected"] == step["turns"]["expected"]
    assert step["dropped"]["streams_failed"] == step["dropped"]["chunks_unsent"] == 0
    after = step["after_decision_ms"]
    assert 0 < after["p50"] <= after["p99"] < step["speech_end_to_first_audio_ms"]["p50"]
    assert step["behind_real_time_ms"]["p50"] >= 0
    # this process is the server: it is found by its port, and its VAD thread by name
    assert result["processes"]["server"] == [os.getpid()]
    assert step["cpu"]["server_percent"] > 0
    assert step["vad_cpu_ms_per_window"] > 0
    assert stack.server is not None and stack.server.vad.stats.windows > 4 * 5 * 31
