"""The OpenAI engines against a real llama.cpp server and a fake of the audio endpoints."""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from typing import TypeVar, cast

import pytest

from parley.chat_tokens import STOP_STRINGS
from workers.engines import (
    LlmEngine,
    LlmRequest,
    Message,
    Speech,
    SttEngine,
    SttRequest,
    TtsEngine,
    TtsRequest,
    create_engine,
)
from workers.errors import BadResponse, InvalidRequest
from workers.llm.openai_engine import OpenAILlmEngine
from workers.stt.openai_engine import OpenAISttEngine
from workers.tts.openai_engine import OpenAITtsEngine

T = TypeVar("T")


async def stream(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


def tone(seconds: float, sample_rate: int) -> bytes:
    frames = int(seconds * sample_rate)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / sample_rate)))
        for i in range(frames)
    )


def test_registry_builds_each_openai_engine() -> None:
    stt = create_engine("stt", "openai", {"base_url": "http://127.0.0.1:1/v1"})
    llm = create_engine("llm", "openai", {"model": "m", "timeout": 5})
    tts = create_engine("tts", "openai", {"model": "gpt-4o-mini-tts", "voice": "alloy"})
    assert isinstance(stt, OpenAISttEngine) and isinstance(stt, SttEngine)
    assert isinstance(llm, OpenAILlmEngine) and isinstance(llm, LlmEngine)
    assert isinstance(tts, OpenAITtsEngine) and isinstance(tts, TtsEngine)
    assert (stt.model, llm.model, tts.voice, tts.response_format) == (
        "gpt-4o-mini-transcribe", "m", "alloy", "wav",
    )  # fmt: skip


# ----------------------------------------------------------------- LLM


async def test_llm_streams_from_llama_cpp_server(llama_server: str) -> None:
    engine = OpenAILlmEngine(model="stories260K", base_url=llama_server, timeout=60)
    engine.load()
    request = LlmRequest(
        messages=(Message("system", "Once upon a time"), Message("user", "Tell me about a cat.")),
        temperature=0.8,
        max_tokens=32,
        options={"seed": "7", "top_p": "0.95"},
    )
    try:
        deltas = [delta async for delta in engine.run(request)]
    finally:
        await engine.aclose()
    texts = [delta.text for delta in deltas[:-1]]
    assert len(texts) >= 2 and all(texts), deltas
    assert all(delta.finish_reason is None for delta in deltas[:-1])
    assert deltas[-1].text == "" and deltas[-1].finish_reason in {"stop", "length"}
    assert "".join(texts).strip()


async def test_llm_sends_images_and_typed_options(fake_openai) -> None:
    engine = OpenAILlmEngine(model="gpt-4o-mini", base_url=fake_openai.base_url, api_key="test-key")
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"
    request = LlmRequest(
        messages=(
            Message("system", "Be brief."),
            Message("user", "What is this?", images=(jpeg, jpeg[:5])),
        ),
        temperature=0.3,
        max_tokens=20,
        options={"top_p": "0.5", "seed": "3", "stop": '["\\n", "User:"]', "top_k": "40"},
    )
    deltas = [delta async for delta in engine.run(request)]
    await engine.aclose()

    assert [d.text for d in deltas] == [*fake_openai.chat_deltas, ""]
    assert deltas[-1].finish_reason == "stop"
    body = fake_openai.last("/v1/chat/completions").json
    assert body["stream"] is True and body["model"] == "gpt-4o-mini"
    assert (body["temperature"], body["max_tokens"]) == (0.3, 20)
    # A compatible server is also asked to stop at leaked chat-template tokens.
    assert (body["top_p"], body["seed"]) == (0.5, 3)
    assert body["stop"] == ["\n", "User:", *STOP_STRINGS]
    assert "top_k" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    text, *images = body["messages"][1]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    urls = [part["image_url"]["url"] for part in images]
    assert [part["type"] for part in images] == ["image_url", "image_url"]
    prefix = "data:image/jpeg;base64,"
    assert all(url.startswith(prefix) for url in urls)
    assert [base64.b64decode(url[len(prefix) :]) for url in urls] == [jpeg, jpeg[:5]]


# ----------------------------------------------------------------- STT


async def test_stt_uploads_wav_and_returns_text(fake_openai) -> None:
    engine = OpenAISttEngine(base_url=fake_openai.base_url, api_key="test-key", timeout=5)
    engine.load()
    pcm = tone(0.5, 16000)
    chunks = [pcm[:1001], pcm[1001:5000], pcm[5000:]]  # chunks need not hold whole samples
    request = SttRequest(sample_rate=16000, language="en", prompt="lamp, living room")
    transcripts = [t async for t in engine.run(request, stream(chunks))]
    await engine.aclose()

    (transcript,) = transcripts
    assert transcript.text == "8000 frames at 16000 Hz, language en"
    assert transcript.final and transcript.language == "en"
    assert transcript.audio_seconds == pytest.approx(0.5)

    received = fake_openai.last("/v1/audio/transcriptions")
    assert received.fields["model"] == "gpt-4o-mini-transcribe"
    assert received.fields["language"] == "en"
    assert received.fields["prompt"] == "lamp, living room"
    assert received.file is not None
    filename, content_type, data = received.file
    assert filename.endswith(".wav") and content_type == "audio/wav"
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.readframes(wav.getnframes()) == pcm


async def test_stt_empty_audio_needs_no_request(fake_openai) -> None:
    engine = OpenAISttEngine(base_url=fake_openai.base_url, api_key="test-key")
    transcripts = [t async for t in engine.run(SttRequest(), stream([]))]
    await engine.aclose()
    assert [(t.text, t.final) for t in transcripts] == [("", True)]
    assert fake_openai.received == []


# ----------------------------------------------------------------- TTS


async def test_tts_streams_pcm_per_text_in_order(fake_openai) -> None:
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key", timeout=5)
    engine.load()
    texts = ["Hello there.", "How are you doing today?"]
    request = TtsRequest(voice="nova", speed=1.25)
    speech = [s async for s in engine.run(request, stream(texts))]
    await engine.aclose()

    assert [s.sentence for s in speech] == sorted(s.sentence for s in speech)
    assert all(s.sample_rate == 24000 and len(s.pcm) % 2 == 0 for s in speech)
    for index, text in enumerate(texts):
        chunks = [s for s in speech if s.sentence == index]
        assert [s.sentence_end for s in chunks] == [False] * (len(chunks) - 1) + [True]
        assert len([s for s in chunks if s.pcm]) >= 2  # streamed, not buffered
        assert b"".join(s.pcm for s in chunks) == fake_openai.pcm_for(text)
        assert len(b"".join(s.pcm for s in chunks)) == 200 * len(text)

    bodies = [r.json for r in fake_openai.received if r.path == "/v1/audio/speech"]
    assert [b["input"] for b in bodies] == texts
    for body in bodies:
        assert body["model"] == "gpt-4o-mini-tts" and body["voice"] == "nova"
        assert body["response_format"] == "wav" and body["speed"] == 1.25


async def test_tts_blank_text_keeps_sentence_numbering(fake_openai) -> None:
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    speech = [s async for s in engine.run(TtsRequest(), stream(["Hi.", "  ", "Bye."]))]
    await engine.aclose()
    ends = [(s.sentence, len(s.pcm)) for s in speech if s.sentence_end]
    assert ends == [(0, 0), (1, 0), (2, 0)]
    assert [s.sentence for s in speech if s.pcm] == sorted(s.sentence for s in speech if s.pcm)
    assert {s.sentence for s in speech if s.pcm} == {0, 2}
    assert [r.json["input"] for r in fake_openai.received] == ["Hi.", "Bye."]
    assert all(r.json["voice"] == "alloy" and "speed" not in r.json for r in fake_openai.received)


async def test_tts_stopped_early_then_reused(fake_openai) -> None:
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    run = engine.run(TtsRequest(), stream(["A long sentence to cut."]))
    async with aclosing(cast(AsyncGenerator[Speech, None], run)) as speech:
        first = await anext(speech)  # barge-in after the first chunk
    assert first.pcm and not first.sentence_end
    again = [s async for s in engine.run(TtsRequest(), stream(["Again."]))]
    await engine.aclose()
    assert b"".join(s.pcm for s in again) == fake_openai.pcm_for("Again.")


async def test_template_stops_only_for_a_compatible_server(fake_openai) -> None:
    openai_api = OpenAILlmEngine(api_key="sk-test")  # api.openai.com: no network needed
    compatible = OpenAILlmEngine(base_url=fake_openai.base_url, api_key="test-key")
    forced = OpenAILlmEngine(api_key="sk-test", template_stops=True)
    try:
        assert openai_api._stops(["x"]) == ["x"]
        assert compatible._stops([]) == list(STOP_STRINGS)
        assert forced._stops(["<|im_end|>"]) == list(STOP_STRINGS)  # no duplicates
    finally:
        for engine in (openai_api, compatible, forced):
            await engine.aclose()


# ----------------------------------------------------------------- TTS sample rates


async def speak_all(engine: OpenAITtsEngine, texts: list[str]) -> list[Speech]:
    try:
        return [s async for s in engine.run(TtsRequest(), stream(texts))]
    finally:
        await engine.aclose()


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
async def test_tts_takes_the_rate_from_the_wav_header(fake_openai, rate: int) -> None:
    fake_openai.speech_rate = rate
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    speech = await speak_all(engine, ["Hello there.", "Bye."])
    assert {s.sample_rate for s in speech} == {rate}
    for index, text in enumerate(["Hello there.", "Bye."]):
        pcm = b"".join(s.pcm for s in speech if s.sentence == index)
        assert pcm == fake_openai.pcm_for(text)  # the header is not played as sound


async def test_tts_mixes_a_stereo_wav_down_to_mono(fake_openai) -> None:
    fake_openai.speech_channels = 2
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    speech = await speak_all(engine, ["Stereo."])
    assert b"".join(s.pcm for s in speech) == fake_openai.pcm_for("Stereo.")


@pytest.mark.parametrize(
    ("content_type", "option", "rate"),
    [
        ("audio/pcm;rate=22050", 0, 22050),
        ("audio/L16; rate=16000; channels=1", 24000, 16000),  # the response wins
        ("audio/pcm", 24000, 24000),  # said nothing: the configured rate
    ],
)
async def test_raw_pcm_rate_comes_from_the_response_or_the_option(
    fake_openai, content_type: str, option: int, rate: int
) -> None:
    fake_openai.pcm_content_type = content_type
    engine = OpenAITtsEngine(
        base_url=fake_openai.base_url, api_key="test-key", response_format="pcm", sample_rate=option
    )
    speech = await speak_all(engine, ["Raw."])
    assert {s.sample_rate for s in speech} == {rate}
    assert fake_openai.last("/v1/audio/speech").json["response_format"] == "pcm"


async def test_raw_pcm_of_unknown_rate_is_a_clear_error(fake_openai) -> None:
    engine = OpenAITtsEngine(
        base_url=fake_openai.base_url, api_key="test-key", response_format="pcm"
    )
    with pytest.raises(BadResponse, match=r"without its sample rate.*response_format = 'wav'"):
        await speak_all(engine, ["Raw."])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00", "did not send WAV"),  # an MP3 instead
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(16) + b"data\xff\xff\xff\xff",
         "unreadable WAV header"),
    ],
)  # fmt: skip
async def test_a_response_that_is_not_16_bit_wav_is_a_clear_error(
    fake_openai, header: bytes, message: str
) -> None:
    fake_openai.wav_header = header
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    with pytest.raises(BadResponse, match=message):
        await speak_all(engine, ["Hello."])


def test_an_unknown_response_format_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="response_format"):
        OpenAITtsEngine(response_format="mp3")
