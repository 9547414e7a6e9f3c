"""The example pipelines with the OpenAI engines, on the real path: the scripted
OpenAI-compatible HTTP server (chat with ``input_audio`` parts and audio output,
images, embeddings) behind the real engines served as gRPC workers, the bundled
pipeline definitions from parley/defaults.toml, the real server and a scripted edge.

openai-voice (a speech LLM alone, answering with its own audio, with barge-in and
what-was-heard), a speech LLM followed by the TTS, caption -> speech_llm, openai-vision,
and a retrieval index built with an OpenAI-compatible /v1/embeddings.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley import db
from parley.commands import index as index_command
from parley.config import load_config
from protos import edge_pb2
from server.answer import UNHEARD
from tests.integration.conftest import (
    DATA,
    EdgeClient,
    Stack,
    audio_events,
    hello,
    is_kind,
    is_turn,
    speech,
    stored_outputs,
)
from tests.openai_engines.conftest import API_KEY, ChatScript, FakeOpenAI
from tests.openai_engines.test_speech_path import (
    CHAT,
    STORY,
    first_audio,
    playback,
    stored,
    utterance,
    wait_finished,
)
from workers.caption.openai_engine import OpenAICaptionEngine
from workers.kinds import Message, SpeechLlmRequest
from workers.llm.openai_engine import OpenAILlmEngine
from workers.speech_llm.openai_engine import OpenAISpeechLlmEngine
from workers.stt.openai_engine import OpenAISttEngine
from workers.tts.openai_engine import OpenAITtsEngine

Turn = edge_pb2.TurnEvent
Playback = edge_pb2.PlaybackEvent


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()


def engines(fake: FakeOpenAI) -> dict[str, Any]:
    """An engine for every stage name the example pipelines use."""
    options = {"base_url": fake.base_url, "api_key": API_KEY, "timeout": 20}
    return {
        "stt": OpenAISttEngine(**options),
        "llm": OpenAILlmEngine(**options),
        "tts": OpenAITtsEngine(**options),
        "speech_llm": OpenAISpeechLlmEngine(**options),
        "caption": OpenAICaptionEngine(**options),
    }


def chat(fake: FakeOpenAI, index: int) -> list[dict[str, Any]]:
    return list(fake.requests(CHAT)[index].json["messages"])


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of each message; a message with parts gives its text parts."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = " ".join(p["text"] for p in content if p["type"] == "text")
        out.append((m["role"], content))
    return out


def turn_audio(edge: EdgeClient, turn_id: str) -> list[edge_pb2.AudioOut]:
    return [
        e.audio
        for e in edge.events
        if e.WhichOneof("event") == "audio" and e.audio.turn_id == turn_id
    ]


# --------------------------------------------------------------------------- the engine


async def test_speech_llm_engine_sends_the_audio_and_streams_audio_back(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.chat_scripts = [ChatScript(("Hi ", "there."))]
    engine = OpenAISpeechLlmEngine(base_url=fake_openai.base_url, api_key=API_KEY, voice="verse")
    pcm = bytes(range(256)) * 25  # 3200 samples

    async def audio() -> AsyncIterator[bytes]:
        yield pcm[:1000]
        yield pcm[1000:]

    request = SpeechLlmRequest(
        (Message("system", "Be brief."), Message("user", "")), sample_rate=16000, audio_out=True
    )
    deltas = [d async for d in engine.run(request, audio())]
    await engine.aclose()
    body = fake_openai.last(CHAT).json
    assert body["modalities"] == ["text", "audio"]
    assert body["audio"] == {"voice": "verse", "format": "pcm16"}
    with wave.open(io.BytesIO(fake_openai.input_audio())) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        assert wav.readframes(wav.getnframes()) == pcm
    assert "".join(d.text for d in deltas) == "Hi there."
    assert b"".join(d.pcm for d in deltas) == fake_openai.pcm_for("Hi ") + fake_openai.pcm_for(
        "there."
    )
    assert {d.sample_rate for d in deltas if d.pcm} == {24000}
    assert deltas[-1].finish_reason == "stop"


async def test_speech_llm_engine_text_only_asks_for_no_audio(fake_openai: FakeOpenAI) -> None:
    engine = OpenAISpeechLlmEngine(base_url=fake_openai.base_url, api_key=API_KEY)

    async def audio() -> AsyncIterator[bytes]:
        yield b"\x00\x01" * 800

    request = SpeechLlmRequest((Message("user", "context"),), audio_out=False)
    deltas = [d async for d in engine.run(request, audio())]
    await engine.aclose()
    body = fake_openai.last(CHAT).json
    assert "modalities" not in body and "audio" not in body
    assert [p["type"] for p in body["messages"][-1]["content"]] == ["text", "input_audio"]
    assert "".join(d.text for d in deltas) == "Hello there, friend"
    assert not any(d.pcm for d in deltas)


# --------------------------------------------------------------------------- openai-voice


async def test_openai_voice_answers_with_its_own_audio_and_remembers_it(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    pieces = ("The lamp ", "is on. ", "Anything else?")
    fake_openai.chat_scripts = [ChatScript(pieces), ChatScript(("Goodbye.",))]
    await stack.start_pipeline("openai-voice", engines(fake_openai))
    async with EdgeClient(stack.address, hello()) as edge:
        first = await utterance(edge, 0)
        done = await wait_finished(edge, first)
        second = await utterance(edge, 10_000)
        await wait_finished(edge, second)
    audio = turn_audio(edge, first)
    assert b"".join(a.pcm for a in audio) == b"".join(fake_openai.pcm_for(p) for p in pieces)
    assert {a.format.sample_rate for a in audio} == {24000} and audio[-1].last
    assert not any(e.WhichOneof("event") == "transcript" for e in edge.events)  # no STT
    row = stored(first)
    assert (row.status, row.transcript) == ("done", "")
    assert row.response == "The lamp is on. Anything else?"
    assert row.spoken == ["The lamp is on.", "Anything else?"]
    with wave.open(io.BytesIO(fake_openai.input_audio(0))) as wav:
        assert wav.getnframes() == round(row.speech_seconds * 16000)
    latency = dict(done.latency_ms)
    assert "stt_ms" not in latency and "tts_ms" not in latency
    for key in ("speech_llm_ms", "speech_llm_model_ms", "speech_llm_overhead_ms", "send_ms"):
        assert key in latency, key
    path = latency["speech_llm_overhead_ms"] + latency["send_overhead_ms"]
    assert latency["overhead_ms"] == pytest.approx(path)
    assert latency["speech_llm_ms"] + latency["send_ms"] == pytest.approx(
        latency["first_audio_sent_ms"]
    )
    # The next turn's history: the first answer as heard (all of it: never stopped).
    assert texts(chat(fake_openai, 1))[1:3] == [
        ("user", UNHEARD),
        ("assistant", "The lamp is on. Anything else?"),
    ]
    with db.database.connection_context():
        kinds = {m.kind for m in db.Media.select().where(db.Media.turn == first)}
    assert kinds == {"input", "output"}


async def test_barge_in_stops_a_speech_llm_answer_and_keeps_what_was_heard(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_scripts = [ChatScript.pieces(STORY, 6, pause=0.01), ChatScript(("OK.",))]
    fake_openai.speech_samples_per_char = 1200  # 24 kHz: 20 characters a second
    await stack.start_pipeline("openai-voice", engines(fake_openai))
    async with EdgeClient(stack.address, hello()) as edge:
        first = await utterance(edge, 0)
        await edge.wait_for(first_audio(first))
        started = time.monotonic()  # the edge's clock, as its capture times
        await edge.send([playback(first, Playback.STARTED, started)])
        await wait_finished(edge, first)  # all of it generated and sent: still playing
        samples, rate = speech()
        talking = asyncio.create_task(
            edge.send(audio_events(samples, rate, start_seq=10_000), pace=0.02)
        )
        stop = await edge.wait_for(is_kind("stop"))
        # The edge stopped after 0.7 s of the answer: inside the first sentence (1.8 s).
        await edge.send([playback(first, Playback.INTERRUPTED, started + 0.7)])
        await talking
        second = (
            await edge.wait_for(lambda e: is_turn(Turn.SPEECH_ENDED)(e) and e.turn.turn_id != first)
        ).turn.turn_id
        await wait_finished(edge, second)
    assert stop.stop.turn_id == first
    assert texts(chat(fake_openai, 1))[1:3] == [
        ("user", UNHEARD),
        ("assistant", "Sentence number 1 of the long story."),
    ]
    assert len(stored(first).spoken) == 12  # the store keeps all that was said


async def test_a_speech_llm_followed_by_a_tts_answers_in_text(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    toml = """
[pipelines.hybrid]
speech_llm = { pool = "openai-speech-llm" }
tts = { pool = "openai-tts" }
"""
    fake_openai.chat_scripts = [ChatScript(("Sure. ", "The lamp is on."))]
    await stack.start_pipeline("hybrid", engines(fake_openai), toml=toml)
    async with EdgeClient(stack.address, hello()) as edge:
        turn = await utterance(edge, 0)
        done = await wait_finished(edge, turn)
    body = fake_openai.last(CHAT).json
    assert "modalities" not in body and body["messages"][-1]["content"][-1]["type"] == "input_audio"
    assert fake_openai.spoken() == ["Sure.", "The lamp is on."]
    assert stored(turn).spoken == ["Sure.", "The lamp is on."]
    latency = dict(done.latency_ms)
    path = sum(latency[f"{k}_overhead_ms"] for k in ("speech_llm", "tts", "send"))
    assert latency["overhead_ms"] == pytest.approx(path)


# --------------------------------------------------------------------------- vision


def frame_events(samples: Any, rate: int, jpeg: bytes) -> list[edge_pb2.EdgeEvent]:
    audio = audio_events(samples, rate)
    start = audio[0].audio.capture_time
    frame = edge_pb2.VideoFrame(seq=1, jpeg=jpeg, capture_time=start + 0.5)
    return [*audio[:40], edge_pb2.EdgeEvent(frame=frame), *audio[40:]]


async def test_caption_then_speech_llm(stack: Stack, fake_openai: FakeOpenAI) -> None:
    jpeg = (DATA / "frames" / "frame-a.jpg").read_bytes()
    fake_openai.chat_scripts = [
        ChatScript(("A red mug ", "on a desk.")),
        ChatScript(("Nice mug.",)),
    ]
    await stack.start_pipeline("caption-voice", engines(fake_openai))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(frame_events(samples, rate, jpeg))
        done = await edge.wait_for(is_turn(Turn.FINISHED))
    caption_request, answer_request = fake_openai.requests(CHAT)
    parts = caption_request.json["messages"][0]["content"]
    assert parts[1]["image_url"]["url"].endswith(__import__("base64").b64encode(jpeg).decode())
    assert answer_request.at >= caption_request.done_at  # the answer waited for the caption
    system = answer_request.json["messages"][0]
    assert (
        system["role"] == "system"
        and "What the camera sees right now: A red mug on a desk." in system["content"]
    )
    (output,) = stored_outputs(done.turn.turn_id).values()
    assert (output.stage, output.kind, output.status) == ("caption", "caption", "done")
    assert output.value == {"text": "A red mug on a desk."}
    latency = dict(done.turn.latency_ms)
    # caption -> speech_llm -> send is the critical path, each split in model + overhead
    path = sum(latency[f"{k}_overhead_ms"] for k in ("caption", "speech_llm", "send"))
    assert latency["overhead_ms"] == pytest.approx(path)


async def test_caption_voice_without_a_camera_still_answers(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_scripts = [ChatScript(("Hello.",))]
    await stack.start_pipeline("caption-voice", engines(fake_openai))
    async with EdgeClient(stack.address, hello()) as edge:
        turn = await utterance(edge, 0)
        await wait_finished(edge, turn)
    assert len(fake_openai.requests(CHAT)) == 1  # no caption request
    assert stored(turn).status == "done"
    (output,) = stored_outputs(turn).values()
    assert (output.status, output.error) == ("skipped", "no camera frame during the turn")


async def test_openai_vision_sends_the_frame_with_the_transcript(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    jpeg = (DATA / "frames" / "frame-b.jpg").read_bytes()
    fake_openai.transcripts = ["what is this"]
    await stack.start_pipeline("openai-vision", engines(fake_openai))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(frame_events(samples, rate, jpeg))
        await edge.wait_for(is_turn(Turn.FINISHED))
    user = chat(fake_openai, 0)[-1]["content"]
    assert [p["type"] for p in user] == ["text", "image_url"]
    assert user[0]["text"] == "what is this"


# --------------------------------------------------------------------------- embeddings


def test_an_index_built_with_openai_embeddings_finds_the_right_passage(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lamp.md").write_text("The living room lamp turns on with the switch by the door.\n")
    (docs / "cake.txt").write_text("Lily baked a chocolate cake for the birthday party.\n")
    config = load_config(env={"PARLEY_HOME": str(tmp_path)})
    args = argparse.Namespace(
        name="docs", folder=str(docs), embedder="openai", model="fake-embed",
        base_url=fake_openai.base_url, pooling="mean", chunk_chars=800, overlap=1,
        database_url="", top_k=2, text="how do I turn on the lamp in the living room",
    )  # fmt: skip
    summary = index_command.build(args, config)
    assert (summary["documents"], summary["chunks"]) == (2, 2)
    hits = index_command.query(args, config)
    assert [h["source"] for h in hits] == ["lamp.md", "cake.txt"]
    assert hits[0]["score"] > hits[1]["score"]
    requests = fake_openai.requests("/v1/embeddings")
    assert requests[0].json["model"] == "fake-embed"
