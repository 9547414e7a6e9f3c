"""End of turn by the Smart Turn model over real gRPC: a session of a pipeline with
strategy smart_turn answers the lamp command sooner than the silence would end it, and
the stored turn says how its end was decided."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley import db
from parley.errors import ParleyError
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import EdgeClient, Stack, audio_events, hello, is_turn, speech

Turn = edge_pb2.TurnEvent
ENGINES = {"stt": FixedStt("turn on the lamp"), "llm": ScriptedLlm("Done."), "tts": ToneTts()}


@pytest.fixture(scope="module")
def model_file() -> Path:
    from tests.smart_turn_model import smart_turn_model

    try:
        return smart_turn_model()
    except RuntimeError as exc:  # no package index here
        pytest.skip(str(exc))


@pytest.mark.slow
async def test_smart_turn_session_answers_the_lamp_and_stores_how_it_ended(
    stack: Stack, model_file: Path
) -> None:
    turn = {"strategy": "smart_turn", "model_path": str(model_file), "max_silence_ms": 1500}
    await stack.start(dict(ENGINES), settings={"turn": turn})
    samples, rate = speech(silence_s=2.0)
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate), pace=0.02)  # real time: the model answers
        finished = await edge.wait_for(is_turn(Turn.FINISHED), timeout=60)
    record = dict(finished.turn.latency_ms)
    assert record["endpointing_checks"] >= 1
    assert record["endpointing_probability"] >= 0.5
    assert record["endpointing_model_ms"] > 0
    # decided by the model, well before max_silence_ms (and before silence-500 would)
    assert record["endpointing_ms"] < 1000
    assert "first_audio_sent_ms" in record  # answered
    with db.database.connection_context():
        row = db.Turn.get_by_id(finished.turn.turn_id)
        assert row.transcript == "turn on the lamp" and row.status == "done"
        assert row.latency["endpointing_checks"] == record["endpointing_checks"]
        ended = row.outputs["endpointing"]
    assert ended["strategy"] == "smart_turn" and ended["decided_by"] == "model"
    assert ended["probability"] >= 0.5 and ended["checks"] >= 1
    assert ended["silence_ms"] == pytest.approx(record["endpointing_ms"], abs=0.1)


async def test_silence_session_records_its_strategy(stack: Stack) -> None:
    await stack.start(dict(ENGINES))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
    record = dict(finished.turn.latency_ms)
    assert record["endpointing_checks"] == 0 and "endpointing_probability" not in record
    with db.database.connection_context():
        ended = db.Turn.get_by_id(finished.turn.turn_id).outputs["endpointing"]
    assert (ended["strategy"], ended["decided_by"]) == ("silence", "silence")
    assert ended["silence_ms"] >= 500


async def test_smart_turn_without_its_model_refuses_to_start(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ParleyError, match=r"parley models pull --only turn"):
        await stack.start(
            dict(ENGINES), settings={"turn": {"strategy": "smart_turn", "model_path": str(missing)}}
        )
