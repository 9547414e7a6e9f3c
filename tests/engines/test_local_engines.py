"""The local engines (faster-whisper, llama.cpp, piper) on the tiny models, for real:
real loading code, real inference, no network."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.engines import (
    LlmRequest,
    Message,
    Speech,
    SttRequest,
    TextDelta,
    Transcript,
    TtsRequest,
    create_engine,
)
from workers.errors import InvalidRequest, ModelNotFound

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data"
LAMP = DATA / "turn_on_the_living_room_lamp.wav"
DEFAULTS = Path(__file__).resolve().parents[2] / "parley" / "defaults.toml"


async def aiter_of(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def pcm16_mono(path: Path, rate: int) -> bytes:
    """A sound file as PCM16LE mono at ``rate`` (linear-interpolation resampling)."""
    soundfile = pytest.importorskip("soundfile")
    audio, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    count = round(len(mono) * rate / source_rate)
    times = np.arange(count) * source_rate / rate
    resampled = np.interp(times, np.arange(len(mono)), mono)
    return (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()


def chunks(data: bytes, size: int = 3200) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "engine-inference" and t.is_alive()]


def wait_for_no_engine_threads(timeout: float = 5.0) -> bool:
    """Block (without running the event loop) until no inference thread is alive."""
    deadline = time.monotonic() + timeout
    while engine_threads():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def await_no_engine_threads(timeout: float = 5.0) -> bool:
    """Like wait_for_no_engine_threads, but lets the event loop run meanwhile."""
    deadline = time.monotonic() + timeout
    while engine_threads():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# ------------------------------------------------------------------ tiny model builder


def _digests(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(root)): (
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_tiny_models_are_built_once_and_deterministically(tmp_path: Path) -> None:
    tiny_models = pytest.importorskip("workers.tiny_models")
    first = tiny_models.build_tiny_models(tmp_path / "a")
    assert (first["whisper"] / "tokenizer.json").is_file()
    assert (first["whisper"] / "model.bin").is_file()
    assert first["voice"].is_file() and first["voice_config"].is_file()
    assert first["gguf"].read_bytes() == (tiny_models.ASSETS / "stories260K.gguf").read_bytes()
    before = _digests(tmp_path / "a")

    time.sleep(0.01)
    again = tiny_models.build_tiny_models(tmp_path / "a")
    assert again == first
    assert _digests(tmp_path / "a") == before  # nothing rewritten

    other = tiny_models.build_tiny_models(tmp_path / "b")
    hashes_a = {name: digest for name, (_, digest) in before.items()}
    hashes_b = {name: digest for name, (_, digest) in _digests(tmp_path / "b").items()}
    assert hashes_a == hashes_b  # same seeds, same bytes

    other["voice"].unlink()  # a missing file means rebuild
    tiny_models.build_tiny_models(tmp_path / "b")
    assert other["voice"].is_file()


# ------------------------------------------------------------------ faster-whisper


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to fetch a model or tokenizer from the Hugging Face hub."""
    fw_transcribe = pytest.importorskip("faster_whisper.transcribe")
    tokenizers = pytest.importorskip("tokenizers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"tried to download {args} {kwargs}")

    monkeypatch.setattr(fw_transcribe, "download_model", no_network)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_pretrained", no_network)


@pytest.fixture
def whisper(tiny_models: dict[str, Path], offline: None) -> Any:
    module = pytest.importorskip("workers.stt.faster_whisper_engine")
    engine = module.FasterWhisperEngine(str(tiny_models["whisper"]), compute_type="float32")
    engine.load()
    yield engine
    engine.close()


async def transcribe(engine: Any, pcm: bytes, rate: int) -> list[Transcript]:
    return [t async for t in engine.run(SttRequest(sample_rate=rate), aiter_of(chunks(pcm)))]


async def test_whisper_transcribes_a_clip_offline(whisper: Any) -> None:
    results = await transcribe(whisper, pcm16_mono(LAMP, 16000), 16000)
    final = results[-1]
    assert final.final and all(not r.final for r in results[:-1])
    assert final.text.strip()  # random weights: nonsense, but some text
    assert final.language == "en"
    assert final.audio_seconds == pytest.approx(2.99, abs=0.01)
    if len(results) > 1:
        assert results[-2].text == final.text


async def test_whisper_resamples_other_rates(whisper: Any) -> None:
    final = (await transcribe(whisper, pcm16_mono(LAMP, 44100), 44100))[-1]
    assert final.final and final.text.strip()
    assert final.audio_seconds == pytest.approx(2.99, abs=0.02)


async def test_whisper_empty_audio_gives_an_empty_final_transcript(whisper: Any) -> None:
    results = await transcribe(whisper, b"", 16000)
    assert results == [Transcript("", final=True, language="", audio_seconds=0.0)]


async def test_whisper_rejects_a_bad_sample_rate(whisper: Any) -> None:
    with pytest.raises(InvalidRequest):
        await transcribe(whisper, b"\x00\x00" * 100, 0)


# ------------------------------------------------------------------ llama.cpp


@pytest.fixture
def llama(tiny_models: dict[str, Path]) -> Any:
    module = pytest.importorskip("workers.llm.llama_cpp_engine")
    engine = module.LlamaCppEngine(
        str(tiny_models["gguf"]), chat_format="alpaca", n_ctx=512, seed=1
    )
    engine.load()
    yield engine
    engine.close()


def story_request(max_tokens: int) -> LlmRequest:
    messages = (Message("system", "Once upon a time"), Message("user", "Tell me a story."))
    return LlmRequest(messages, temperature=0.8, max_tokens=max_tokens)


async def test_llama_streams_deltas_and_a_finish_reason(llama: Any) -> None:
    deltas: list[TextDelta] = [d async for d in llama.run(story_request(48))]
    texts = [d.text for d in deltas if d.text]
    assert len(texts) >= 2
    assert "".join(texts).strip()
    assert deltas[-1] == TextDelta("", finish_reason=deltas[-1].finish_reason)
    assert deltas[-1].finish_reason in ("stop", "length")
    assert all(d.finish_reason is None for d in deltas[:-1])


async def test_llama_stops_generating_when_the_consumer_goes_away(llama: Any) -> None:
    max_tokens = 400
    full = [d async for d in llama.run(story_request(max_tokens))]
    assert full[-1].finish_reason == "length"  # left alone, it writes all 400 tokens
    assert llama.llama.n_tokens > max_tokens  # tokens in the context: prompt + answer

    stream = llama.run(story_request(max_tokens))
    received = [await anext(stream), await anext(stream)]
    assert all(d.finish_reason is None for d in received)
    await stream.aclose()  # what a cancelled gRPC call does to the servicer's loop

    # Closing sets the stop event at once: the thread ends without the loop's help.
    assert wait_for_no_engine_threads(5.0), "generation went on after the consumer left"
    assert llama.llama.n_tokens < max_tokens // 2
    # The lock is free again: the next request runs.
    after = [d async for d in llama.run(story_request(8))]
    assert after[-1].finish_reason in ("stop", "length")


async def test_llama_stops_at_chat_template_tokens(
    llama: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A random model never leaks "<|im_end|>"; a word it does write stands in for it.
    request = LlmRequest(story_request(40).messages, temperature=0.0, max_tokens=40)

    async def text() -> str:
        return "".join([d.text async for d in llama.run(request)])

    full = await text()
    word = next(w for w in full.split()[2:] if len(w) >= 4 and full.index(w) > 0)
    module = importlib.import_module(type(llama).__module__)
    monkeypatch.setattr(module, "STOP_STRINGS", (word,))
    cut = await text()
    assert word not in cut
    assert cut.strip() == full[: full.index(word)].strip()
    llama.template_stops = False  # the option turns the guard off
    assert await text() == full


async def test_llama_cancelled_task_stops_generation(llama: Any) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in llama.run(story_request(400)):
            first.set()
            await asyncio.sleep(3600)  # a slow consumer: barge-in cancels it

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A plain ``async for`` leaves the engine's generator to the loop's finaliser,
    # which closes it, which stops the producer thread.
    assert await await_no_engine_threads(5.0)


# ------------------------------------------------------------------ piper


@pytest.fixture
def piper(tiny_models: dict[str, Path]) -> Any:
    module = pytest.importorskip("workers.tts.piper_engine")
    engine = module.PiperEngine(str(tiny_models["voice"]))
    engine.load()
    yield engine
    engine.close()


async def speak(engine: Any, texts: list[str], speed: float | None = None) -> list[Speech]:
    return [s async for s in engine.run(TtsRequest(speed=speed), aiter_of(texts))]


def samples(speech: list[Speech], sentence: int) -> np.ndarray:
    pcm = b"".join(s.pcm for s in speech if s.sentence == sentence)
    return np.frombuffer(pcm, dtype="<i2")


async def test_piper_speaks_texts_in_order(piper: Any) -> None:
    texts = ["Hi.", "This second sentence is a good deal longer than the first one."]
    speech = await speak(piper, texts)
    assert [s.sentence for s in speech] == sorted(s.sentence for s in speech)
    assert {s.sentence for s in speech} == {0, 1}
    for index in (0, 1):
        mine = [s for s in speech if s.sentence == index]
        assert [s.sentence_end for s in mine] == [False] * (len(mine) - 1) + [True]
    assert all(s.sample_rate == 22050 for s in speech)
    short, long = samples(speech, 0), samples(speech, 1)
    assert np.abs(short.astype(np.int32)).max() > 10000  # audible, not silence
    assert len(long) > 2 * len(short)


async def test_piper_speed_shortens_audio(piper: Any) -> None:
    text = ["Turning on the living room lamp now."]
    normal = samples(await speak(piper, text), 0)
    fast = samples(await speak(piper, text, speed=2.0), 0)
    assert len(fast) == pytest.approx(len(normal) / 2, rel=0.05)


async def test_piper_text_without_words_still_ends_its_sentence(piper: Any) -> None:
    speech = await speak(piper, ["", "Okay."])
    assert speech[0] == Speech(b"", 22050, 0, sentence_end=True)
    assert speech[-1].sentence == 1 and speech[-1].sentence_end


# ------------------------------------------------------------------ missing models, config


def test_missing_models_raise_model_not_found(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    stt = pytest.importorskip("workers.stt.faster_whisper_engine")
    llm = pytest.importorskip("workers.llm.llama_cpp_engine")
    tts = pytest.importorskip("workers.tts.piper_engine")
    missing = tmp_path / "nothing-here"
    engines = [
        stt.FasterWhisperEngine(str(missing)),
        llm.LlamaCppEngine(str(missing / "model.gguf")),
        tts.PiperEngine(str(missing / "voice.onnx")),
    ]
    for engine in engines:
        with pytest.raises(ModelNotFound, match="parley models pull"):
            engine.load()

    incomplete = tmp_path / "whisper"  # a model without tokenizer.json would go online
    incomplete.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.json"):
        (incomplete / name).write_bytes((tiny_models["whisper"] / name).read_bytes())
    with pytest.raises(ModelNotFound, match=r"tokenizer\.json"):
        stt.FasterWhisperEngine(str(incomplete)).load()


@pytest.mark.parametrize(
    "pool", ["tiny-stt", "tiny-llm", "tiny-tts", "local-stt", "local-llm", "local-tts"]
)
def test_default_pool_options_fit_the_engines(pool: str) -> None:
    spec = tomllib.loads(DEFAULTS.read_text())["pools"][pool]
    module = {"stt": "faster_whisper", "llm": "llama_cpp", "tts": "piper"}[spec["stage"]]
    pytest.importorskip(f"workers.{spec['stage']}.{module}_engine")
    engine = create_engine(spec["stage"], spec["engine"], spec.get("options", {}))
    assert engine.model == spec["options"]["model"]
