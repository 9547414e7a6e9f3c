"""Stage outputs on the admin: an emotion stage's labels, retrieved passages, a caption
and a failed stage's error on the turn page; every stage kind's column on the latency
page and its bar in the turn's waterfall. Rows are written by the server's real store
(server/store.py), as a turn through the pipeline writes them."""

from __future__ import annotations

import asyncio

from flask.testing import FlaskClient

from parley.config import Config
from server.store import TurnStore
from tests.admin.conftest import add_turn

LATENCY = {
    "endpointing_ms": 500.0,
    "stt_done_ms": 100.0, "stt_ms": 100.0, "stt_model_ms": 80.0, "stt_overhead_ms": 20.0,
    "retrieve_done_ms": 150.0, "retrieve_ms": 50.0, "retrieve_model_ms": 40.0,
    "retrieve_overhead_ms": 10.0,
    "analyse_done_ms": 60.0, "analyse_ms": 60.0, "analyse_model_ms": 55.0,
    "analyse_overhead_ms": 5.0,
    "first_sentence_ms": 300.0, "llm_ms": 150.0, "llm_model_ms": 140.0, "llm_overhead_ms": 10.0,
    "tts_first_audio_ms": 400.0, "tts_ms": 100.0, "tts_model_ms": 90.0, "tts_overhead_ms": 10.0,
    "first_audio_sent_ms": 401.0, "send_ms": 1.0, "send_model_ms": 0.0, "send_overhead_ms": 1.0,
    "overhead_ms": 51.0,
}  # fmt: skip

OUTPUTS = {
    "emotion": {"kind": "analyse", "status": "done", "error": "", "input": "audio",
                "labels": [{"label": "happy", "score": 0.81}, {"label": "sad", "score": 0.12}],
                "label": "happy", "score": 0.81},
    "docs": {"kind": "retrieve", "status": "done", "error": "", "query": "lamp",
             "passages": [{"text": "Press the <switch> by the door.", "source": "lamp.md",
                           "chunk": 2, "score": 0.93}]},
    "camera": {"kind": "caption", "status": "done", "error": "", "text": "A red mug on a desk."},
    "mood": {"kind": "analyse", "status": "failed", "error": "worker unavailable"},
}  # fmt: skip


def finish(config: Config, turn_id: str) -> None:
    async def write() -> None:
        store = TurnStore(config.database_url, config.data_dir)
        await store.open()
        await store.finish_turn(
            turn_id, status="done", transcript="lamp?", response="Sure.", latency=LATENCY,
            stage_outputs=OUTPUTS,
        )  # fmt: skip
        await store.close()

    asyncio.run(write())


def test_turn_page_shows_each_stage_output(config: Config, bob: FlaskClient) -> None:
    add_turn("s1", pipeline="local-rag")
    finish(config, "s1")
    page = bob.get("/turns/s1").text
    section = page[page.index('id="stage-outputs"') :]
    emotion = section[section.index('<dd data-stage="emotion"') :]
    assert (
        '<span class="label-name">happy</span> <span class="text-muted num">0.81</span>' in emotion
    )
    assert emotion.index("happy") < emotion.index("sad")
    assert "lamp.md#2 · 0.930" in section
    assert "Press the &lt;switch&gt; by the door." in section  # escaped
    assert '<span class="caption">A red mug on a desk.</span>' in section
    assert 'data-stage="mood" data-status="failed"' in section
    assert "failed: worker unavailable" in section
    # The waterfall draws the retrieval between the transcript and the answer.
    assert page.index("retrieve") < page.index("LLM to first sentence")
    add_turn("s2")
    assert 'id="stage-outputs"' not in bob.get("/turns/s2").text


def test_latency_page_has_a_row_for_every_stage_kind(
    config: Config, admin_client: FlaskClient
) -> None:
    add_turn("s1", pipeline="local-rag")
    finish(config, "s1")
    summary = admin_client.get("/latency/summary.json").get_json()["pipelines"]["local-rag"]
    assert summary["retrieve_model_ms"]["mean"] == 40.0
    assert summary["analyse_overhead_ms"]["mean"] == 5.0
    page = admin_client.get("/latency/").text
    assert 'data-metric="retrieve_ms"' in page and 'data-metric="analyse_model_ms"' in page
    assert 'data-metric="caption_ms"' not in page  # no turn has one
    assert "retrieve model" in page  # in the breakdown chart's legend


def test_stage_outputs_join_what_the_turn_stored_when_it_began(
    config: Config, bob: FlaskClient
) -> None:
    from parley import db

    add_turn("s1", pipeline="local-rag")
    with db.database.connection_context():
        db.Turn.update(outputs={"vad": {"speech_start_s": 0.2, "speech_end_s": 1.4}}).where(
            db.Turn.id == "s1"
        ).execute()
    finish(config, "s1")
    with db.database.connection_context():
        stored = db.Turn.get_by_id("s1").outputs
    assert stored == {"vad": {"speech_start_s": 0.2, "speech_end_s": 1.4}, **OUTPUTS}
    page = bob.get("/turns/s1").text
    assert 'data-stage="vad"' not in page  # the VAD's bounds are not a stage's output
