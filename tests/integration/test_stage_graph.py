"""Pipelines as graphs of stages over real gRPC: the bundled local-emotion and local-rag
definitions (their pools pointed at test workers), an analysis that fails, stages
that run at once, an LLM-prompted classifier, and each stage's latency segment.

The emotion stage runs the real ONNX audio classifier on a tiny random-weight model
with the signature of the public speech-emotion export; retrieval runs the real index
engine over an index built by `parley index build` with llama.cpp embeddings of the
bundled stories260K GGUF.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley import db
from parley.commands import index as index_command
from parley.config import Config, load_config
from protos import edge_pb2
from tests.fakes import FixedLabels, FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    StoredOutput,
    audio_events,
    free_address,
    hello,
    is_turn,
    speech,
    stored_outputs,
)
from workers import tiny_emotion
from workers.analyse.onnx_audio_engine import OnnxAudioClassifier
from workers.kinds import AnalyseRequest, Label

Turn = edge_pb2.TurnEvent
ASKED = "How do I turn on the lamp in the living room?"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()


async def one_turn(stack: Stack) -> edge_pb2.TurnEvent:
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        return (await edge.wait_for(is_turn(Turn.FINISHED), timeout=60)).turn


def outputs(turn_id: str) -> dict[str, StoredOutput]:
    """The turn's stored context-stage outputs (Turn.outputs entries with a kind)."""
    return stored_outputs(turn_id)


def stored(turn_id: str) -> db.Turn:
    with db.database.connection_context():
        return db.Turn.get_by_id(turn_id)


def system_prompt(llm: ScriptedLlm) -> str:
    first = llm.requests[0].messages[0]
    return first.content if first.role == "system" else ""


async def test_local_emotion_labels_are_stored_told_to_the_llm_and_timed(
    stack: Stack, tmp_path: Path
) -> None:
    model = tiny_emotion.write_tiny_emotion(tmp_path / "emotion")
    classifier = OnnxAudioClassifier(str(model), top_k=3)  # as the bundled pool
    classifier.load()
    llm = ScriptedLlm("I hear you. Let me help.")
    engines = {"stt": FixedStt(ASKED), "emotion": classifier, "llm": llm, "tts": ToneTts()}
    await stack.start_pipeline("local-emotion", engines)
    finished = await one_turn(stack)
    (emotion,) = outputs(finished.turn_id).values()
    assert (emotion.stage, emotion.kind, emotion.status) == ("emotion", "analyse", "done")
    labels = emotion.value["labels"]
    # The best label is also stored flat, for annotation questions bound to it.
    assert (emotion.entry["label"], emotion.entry["score"]) == (
        labels[0]["label"],
        labels[0]["score"],
    )
    assert emotion.value["input"] == "audio"
    assert len(labels) == 3  # top_k
    assert {x["label"] for x in labels} <= set(tiny_emotion.LABELS)
    assert [x["score"] for x in labels] == sorted((x["score"] for x in labels), reverse=True)
    # The same audio through the engine directly gives the same labels.
    row = stored(finished.turn_id)
    with db.database.connection_context():
        (media,) = [m for m in row.media if m.kind == "input"]
    pcm = (stack.home / "data" / media.path).read_bytes()[44:]
    direct = await classifier.run(AnalyseRequest(audio=pcm))
    assert direct[0].label == labels[0]["label"]
    assert direct[0].score == pytest.approx(labels[0]["score"], abs=1e-5)
    # The pipeline's context template put the best label into the LLM's prompt.
    assert f"The user's voice sounds {labels[0]['label']}." in system_prompt(llm)
    assert row.status == "done" and row.response.strip() == "I hear you. Let me help."
    latency = dict(finished.latency_ms)
    for key in ("analyse_ms", "analyse_model_ms", "analyse_overhead_ms", "analyse_done_ms"):
        assert key in latency, key
    assert latency["analyse_ms"] == pytest.approx(latency["analyse_done_ms"])  # from the decision
    # The LLM started after both its inputs: its segment starts at the later one.
    start = max(latency["stt_done_ms"], latency["analyse_done_ms"])
    assert latency["llm_ms"] == pytest.approx(latency["first_sentence_ms"] - start)
    last = "stt" if latency["stt_done_ms"] >= latency["analyse_done_ms"] else "analyse"
    path = sum(latency[f"{k}_overhead_ms"] for k in (last, "llm", "tts", "send"))
    assert latency["overhead_ms"] == pytest.approx(path)
    # The stage has its span in the turn's trace, with the worker's call under it.
    assert stack.server is not None
    await asyncio.to_thread(stack.server.telemetry.flush)
    with db.database.connection_context():
        spans = {s.name: s for s in db.Span.select().where(db.Span.trace_id == row.trace_id)}
    analyse, call = spans["analyse"], spans["/parley.workers.v1.Analyse/Analyse"]
    assert analyse.parent_id == spans["turn"].span_id and call.parent_id == analyse.span_id
    assert analyse.attributes["parley.stage.name"] == "emotion"
    assert analyse.attributes["parley.model_seconds"] > 0
    assert {"stt", "llm", "tts"} <= set(spans)


MOODY = """
[pools.test-mood]
stage = "analyse"
engine = "fixed"
addresses = ["127.0.0.1:1"]

[pipelines.moody]
stt = { pool = "instant-stt" }
mood = { pool = "test-mood", context = "Mood: {label}." }
llm = { pool = "instant-llm" }
tts = { pool = "instant-tts" }
"""


async def test_a_failing_analyse_stage_is_stored_and_the_turn_still_answers(stack: Stack) -> None:
    llm = ScriptedLlm("Still here.")
    engines = {
        "stt": FixedStt(),
        "mood": FixedLabels(fail="the mood model fell over"),
        "llm": llm,
        "tts": ToneTts(),
    }
    await stack.start_pipeline("moody", engines, toml=MOODY)
    finished = await one_turn(stack)
    row = stored(finished.turn_id)
    assert (row.status, row.response.strip(), row.error) == ("done", "Still here.", "")
    mood = outputs(finished.turn_id)["mood"]
    assert mood.status == "failed" and "the mood model fell over" in mood.error
    assert "Mood" not in system_prompt(llm)
    assert "analyse_ms" not in finished.latency_ms
    assert finished.latency_ms["first_audio_sent_ms"] > 0


async def test_an_unreachable_analyse_worker_is_stored_and_the_turn_still_answers(
    stack: Stack,
) -> None:
    stack.addresses["test-mood"] = free_address()  # nothing listens there
    engines = {"stt": FixedStt(), "llm": ScriptedLlm("Still here."), "tts": ToneTts()}
    await stack.start_pipeline("moody", engines, toml=MOODY)
    finished = await one_turn(stack)
    assert stored(finished.turn_id).status == "done"
    mood = outputs(finished.turn_id)["mood"]
    assert mood.status == "failed" and "unavailable" in mood.error


class Rendezvous:
    """An analyse engine that only answers once the other one has started: two of them
    in one pipeline finish only if they run at the same time."""

    model = "rendezvous"

    def __init__(self, label: str, other: asyncio.Event, mine: asyncio.Event) -> None:
        self.label, self.other, self.mine = label, other, mine

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: AnalyseRequest) -> list[Label]:
        self.mine.set()
        await asyncio.wait_for(self.other.wait(), 5.0)
        return [Label(self.label, 1.0)]


TWO = """
[pools.test-a]
stage = "analyse"
engine = "fixed"
addresses = ["127.0.0.1:1"]

[pools.test-b]
stage = "analyse"
engine = "fixed"
addresses = ["127.0.0.1:2"]

[pipelines.two]
stt = { pool = "instant-stt" }
loud = { pool = "test-a" }
tone = { pool = "test-b", on = "transcript" }
llm = { pool = "instant-llm" }
tts = { pool = "instant-tts" }
"""


async def test_independent_stages_run_at_the_same_time(stack: Stack) -> None:
    a, b = asyncio.Event(), asyncio.Event()
    engines = {
        "stt": FixedStt(),
        "loud": Rendezvous("loud", b, a),
        "tone": Rendezvous("friendly", a, b),
        "llm": ScriptedLlm("Fine."),
        "tts": ToneTts(),
    }
    await stack.start_pipeline("two", engines, toml=TWO)
    finished = await one_turn(stack)
    stages = outputs(finished.turn_id)
    assert {k: (v.status, v.value["labels"][0]["label"]) for k, v in stages.items()} == {
        "loud": ("done", "loud"),
        "tone": ("done", "friendly"),
    }
    assert stages["tone"].value["input"] == "transcript"
    latency = dict(finished.latency_ms)
    # A second stage of a kind is timed under its own name; the text one from the transcript.
    assert "analyse_ms" in latency and "tone_ms" in latency
    assert latency["tone_ms"] == pytest.approx(latency["tone_done_ms"] - latency["stt_done_ms"])


CLASSIFIER = """
[pools.test-classifier]
stage = "llm"
engine = "scripted"
addresses = ["127.0.0.1:1"]

[pipelines.sentiment]
stt = { pool = "instant-stt" }
llm = { pool = "instant-llm" }
tts = { pool = "instant-tts" }

[pipelines.sentiment.sentiment]
pool = "test-classifier"
kind = "analyse"
labels = ["positive", "negative"]
context = "The user seems {label}."
"""


async def test_an_llm_prompted_classifier_through_an_llm_pool(stack: Stack) -> None:
    classifier, llm = ScriptedLlm("Negative."), ScriptedLlm("Sorry to hear that.")
    engines = {
        "stt": FixedStt("this is awful"),
        "sentiment": classifier,
        "llm": llm,
        "tts": ToneTts(),
    }
    await stack.start_pipeline("sentiment", engines, toml=CLASSIFIER)
    finished = await one_turn(stack)
    sentiment = outputs(finished.turn_id)["sentiment"]
    assert sentiment.value == {
        "input": "transcript",
        "labels": [{"label": "negative", "score": 1.0}, {"label": "positive", "score": 0.0}],
    }
    asked = classifier.requests[0]
    assert "positive, negative" in asked.messages[0].content
    assert asked.messages[1].content == "this is awful" and asked.temperature == 0.0
    assert "The user seems negative." in system_prompt(llm)


DOCUMENTS = {
    "lamp.md": "# The living room\n\nThe lamp in the living room turns on when you press the "
    "switch by the door.\n",
    "cake.txt": "Lily baked a chocolate cake for her mother's birthday party.\n",
    "fox.txt": "The red fox jumped over the fence and ran into the forest.\n",
}


def build_index(home: Path, folder: Path, model: Path) -> Config:
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    config = load_config(env={"PARLEY_HOME": str(home)})
    args = argparse.Namespace(
        name="docs", folder=str(folder), embedder="llama_cpp", model=str(model),
        pooling="mean", base_url=None, chunk_chars=800, overlap=1, database_url="",
    )  # fmt: skip
    summary = index_command.build(args, config)
    assert (summary["documents"], summary["chunks"], summary["dimensions"]) == (3, 3, 64)
    return config


@pytest.mark.slow
async def test_local_rag_puts_the_right_passage_first_into_the_prompt(
    stack: Stack, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("sqlite_vec")
    from workers.retrieve.index_engine import IndexRetriever
    from workers.tiny_models import ASSETS, GGUF_NAME

    build_index(stack.home, tmp_path / "docs", ASSETS / GGUF_NAME)
    retriever = IndexRetriever(str(stack.home / "indexes" / "docs.sqlite"), top_k=2)
    retriever.load()
    llm = ScriptedLlm("Press the switch by the door.")
    engines = {"stt": FixedStt(ASKED), "docs": retriever, "llm": llm, "tts": ToneTts()}
    await stack.start_pipeline("local-rag", engines)
    finished = await one_turn(stack)
    retriever.close()
    docs = outputs(finished.turn_id)["docs"]
    assert (docs.kind, docs.status, docs.value["query"]) == ("retrieve", "done", ASKED)
    passages = docs.value["passages"]
    assert passages[0]["source"] == "lamp.md" and len(passages) == 2
    assert passages[0]["score"] > passages[1]["score"]
    assert "press the switch by the door" in system_prompt(llm)
    assert "Passages from the user's documents" in system_prompt(llm)
    latency = dict(finished.latency_ms)
    # stt -> retrieve -> llm -> tts -> send: retrieval waited for the transcript.
    assert latency["retrieve_ms"] == pytest.approx(
        latency["retrieve_done_ms"] - latency["stt_done_ms"]
    )
    path = sum(latency[f"{k}_overhead_ms"] for k in ("stt", "retrieve", "llm", "tts", "send"))
    assert latency["overhead_ms"] == pytest.approx(path)
    assert sum(latency[f"{k}_ms"] for k in ("stt", "retrieve", "llm", "tts", "send")) == (
        pytest.approx(latency["first_audio_sent_ms"])
    )
