"""OpenAI SDK failures become the workers.errors the servicers map to status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from workers.engines import LlmRequest, Message, SttRequest, TtsRequest
from workers.errors import EngineUnavailable, InvalidRequest, ModelNotFound
from workers.llm.openai_engine import OpenAILlmEngine
from workers.openai_client import NO_KEY, OpenAIEngine, make_client
from workers.stt.openai_engine import OpenAISttEngine
from workers.tts.openai_engine import OpenAITtsEngine

ENGINES = {"stt": OpenAISttEngine, "llm": OpenAILlmEngine, "tts": OpenAITtsEngine}


async def _items(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def drive(engine: OpenAIEngine, **request: Any) -> list[Any]:
    """Run any of the three engines to completion on a small input."""
    try:
        if isinstance(engine, OpenAISttEngine):
            audio = _items([b"\x00\x01" * 1600])
            return [t async for t in engine.run(SttRequest(**request), audio)]
        if isinstance(engine, OpenAILlmEngine):
            llm_request = LlmRequest(messages=(Message("user", "Hi"),), **request)
            return [d async for d in engine.run(llm_request)]
        assert isinstance(engine, OpenAITtsEngine)
        return [s async for s in engine.run(TtsRequest(**request), _items(["Hello."]))]
    finally:
        await engine.aclose()


@pytest.mark.parametrize("stage", sorted(ENGINES))
async def test_connection_refused_is_unavailable(stage: str, refused_url: str) -> None:
    engine = ENGINES[stage](base_url=refused_url, max_retries=0, timeout=5)
    with pytest.raises(EngineUnavailable, match="cannot connect") as caught:
        await drive(engine)
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)
    assert refused_url.removesuffix("/v1") in str(caught.value)


@pytest.mark.parametrize("stage", sorted(ENGINES))
async def test_rejected_key_is_unavailable_and_says_so(stage: str, fake_openai) -> None:
    engine = ENGINES[stage](base_url=fake_openai.base_url, api_key="sk-wrong", timeout=5)
    with pytest.raises(EngineUnavailable, match="API key") as caught:
        await drive(engine)
    assert "401" in str(caught.value) and "OPENAI_API_KEY" in str(caught.value)
    assert fake_openai.received[-1].headers["authorization"] == "Bearer sk-wrong"


@pytest.mark.parametrize("stage", sorted(ENGINES))
async def test_unknown_model_is_model_not_found(stage: str, fake_openai) -> None:
    engine = ENGINES[stage](
        model=fake_openai.missing_model, base_url=fake_openai.base_url, api_key="test-key"
    )
    with pytest.raises(ModelNotFound, match=f"`{fake_openai.missing_model}` does not exist"):
        await drive(engine)


async def test_refused_request_is_invalid(fake_openai) -> None:
    engine = OpenAILlmEngine(base_url=fake_openai.base_url, api_key="test-key")
    with pytest.raises(InvalidRequest, match="HTTP 400: temperature must be at most 2"):
        await drive(engine, temperature=5.0)


async def test_bad_option_value_is_invalid_before_any_request(fake_openai) -> None:
    engine = OpenAILlmEngine(base_url=fake_openai.base_url, api_key="test-key")
    with pytest.raises(InvalidRequest, match="top_p"):
        await drive(engine, options={"top_p": "high"})
    assert fake_openai.received == []


async def test_odd_pcm_is_invalid(fake_openai) -> None:
    engine = OpenAISttEngine(base_url=fake_openai.base_url, api_key="test-key")
    with pytest.raises(InvalidRequest, match="even"):
        [t async for t in engine.run(SttRequest(), _items([b"\x00\x01\x02"]))]
    assert fake_openai.received == []


def test_missing_key_for_openai_fails_at_load() -> None:
    engine = OpenAILlmEngine()
    with pytest.raises(EngineUnavailable, match="OPENAI_API_KEY"):
        engine.load()


def test_key_and_server_come_from_env_or_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(None, "http://127.0.0.1:9/v1", 3.0)
    assert client.api_key == NO_KEY and str(client.base_url) == "http://127.0.0.1:9/v1/"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    client = make_client(None, None, 3.0)
    assert client.api_key == "sk-env" and "api.openai.com" in str(client.base_url)
    assert client.timeout == 3.0
    assert make_client("sk-arg", None, 3.0).api_key == "sk-arg"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8/v1")
    assert make_client(None, None, 3.0).api_key == NO_KEY


def test_close_works_without_a_running_loop(fake_openai) -> None:
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    engine.load()
    client = engine._client
    assert client is not None
    engine.close()  # never used: closed on a fresh loop
    assert client.is_closed()

    loop = asyncio.new_event_loop()
    try:
        speech = loop.run_until_complete(_collect(engine))
        client = engine._client
        assert speech and client is not None and not client.is_closed()
        engine.close()  # used on `loop`, which is not running: closed on it
        assert client.is_closed()
    finally:
        loop.close()


async def test_close_from_a_thread_and_on_the_loop(fake_openai) -> None:
    engine = OpenAITtsEngine(base_url=fake_openai.base_url, api_key="test-key")
    assert await _collect(engine)
    client = engine._client
    assert client is not None
    await asyncio.to_thread(engine.close)  # waits for the loop to close it
    assert client.is_closed()

    assert await _collect(engine)  # reloads on use
    client = engine._client
    assert client is not None and not client.is_closed()
    engine.close()  # from the loop itself: scheduled, not awaited
    for _ in range(100):
        if client.is_closed():
            break
        await asyncio.sleep(0.01)
    assert client.is_closed()


async def _collect(engine: OpenAITtsEngine) -> list[Any]:
    return [s async for s in engine.run(TtsRequest(), _items(["Hi."]))]
