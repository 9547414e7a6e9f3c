"""What is spoken and what is remembered, on the real path: a scripted OpenAI-compatible
HTTP server (transcripts, chat answers streamed chunk by chunk with chosen timing,
speech as WAV) behind the real `openai` STT, LLM and TTS engines served as gRPC
workers, the real server, and a scripted edge on the Converse stream.

Each test reads what the TTS was asked to say (the speech requests), what history the
LLM got on the next turn (the chat requests), which events the edge got, and what the
store kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley import db
from protos import edge_pb2
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    hello,
    is_kind,
    is_turn,
    speech,
)
from tests.openai_engines.conftest import API_KEY, ChatScript, FakeOpenAI
from workers.llm.openai_engine import OpenAILlmEngine
from workers.stt.openai_engine import OpenAISttEngine
from workers.tts.openai_engine import OpenAITtsEngine

Turn = edge_pb2.TurnEvent
Playback = edge_pb2.PlaybackEvent
CHAT = "/v1/chat/completions"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()


async def start(stack: Stack, fake: FakeOpenAI, **settings: Any) -> None:
    options = {"base_url": fake.base_url, "api_key": API_KEY, "timeout": 20}
    engines = {
        "stt": OpenAISttEngine(**options),
        "llm": OpenAILlmEngine(**options),
        "tts": OpenAITtsEngine(**options),
    }
    await stack.start(engines, **settings)


def stored(turn_id: str) -> db.Turn:
    with db.database.connection_context():
        return db.Turn.get_by_id(turn_id)


def history(fake: FakeOpenAI, index: int) -> list[tuple[str, str]]:
    """(role, content) of the messages of the ``index``-th chat request."""
    return [(m["role"], m["content"]) for m in fake.requests(CHAT)[index].json["messages"]]


def finished(edge: EdgeClient) -> list[edge_pb2.TurnEvent]:
    return [e.turn for e in edge.events if is_turn(Turn.FINISHED)(e)]


def stops(edge: EdgeClient) -> list[str]:
    return [e.stop.turn_id for e in edge.events if e.WhichOneof("event") == "stop"]


async def utterance(edge: EdgeClient, seq: int) -> str:
    """Say the lamp command; the id of the turn it became (once its speech ended)."""
    before = {e.turn.turn_id for e in edge.events if is_turn(Turn.SPEECH_ENDED)(e)}
    samples, rate = speech()
    await edge.send(audio_events(samples, rate, start_seq=seq))
    ended = await edge.wait_for(
        lambda e: is_turn(Turn.SPEECH_ENDED)(e) and e.turn.turn_id not in before
    )
    return ended.turn.turn_id


async def wait_finished(edge: EdgeClient, turn_id: str) -> edge_pb2.TurnEvent:
    return (await edge.wait_for(is_turn(Turn.FINISHED, turn_id))).turn


def first_audio(turn_id: str) -> Callable[[edge_pb2.ServerEvent], bool]:
    return lambda e: e.WhichOneof("event") == "audio" and e.audio.turn_id == turn_id


def playback(turn_id: str, kind: int, edge_time: float) -> edge_pb2.EdgeEvent:
    return edge_pb2.EdgeEvent(
        playback=edge_pb2.PlaybackEvent(turn_id=turn_id, kind=kind, edge_time=edge_time)
    )


# --------------------------------------------------------------------------- spoken

ANSWER = (
    "<think>The user wants the lamp on. I should say how.</think>"
    "Sure. 1. Open the app. 2. Tap **Lights**. 🎉 See [the guide](https://example.com/g?x=1). "
    "你好。今天天气很好！<|im_end|><|im_start|>user\nThanks!"
)
SPOKEN = [
    "Sure.",
    "1. Open the app.",
    "2. Tap Lights.",
    "See the guide.",
    "你好。",
    "今天天气很好！",
]


async def test_only_speech_reaches_the_tts_sentence_by_sentence_while_the_llm_streams(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcripts = ["turn on the lamp"]
    fake_openai.chat_scripts = [ChatScript.pieces(ANSWER, 4, pause=0.05)]
    fake_openai.speech_rate = 22050  # the WAV says so; nothing assumes 24000
    await start(stack, fake_openai)
    async with EdgeClient(stack.address, hello()) as edge:
        turn_id = await utterance(edge, 0)
        done = await wait_finished(edge, turn_id)
    assert not done.interrupted
    assert fake_openai.spoken() == SPOKEN
    # Streamed: the first sentence, and the first Chinese one, were asked for while the
    # LLM was still answering.
    chat = fake_openai.last(CHAT)
    assert chat.done_at is not None
    speech_requests = fake_openai.requests("/v1/audio/speech")
    assert speech_requests[0].at < chat.done_at
    assert speech_requests[SPOKEN.index("你好。")].at < chat.done_at
    # The compatible server was asked to stop at template tokens too.
    assert "<|im_end|>" in chat.json["stop"]
    # The edge got the answer's text without reasoning or tokens, and audio at 22050 Hz.
    shown = "".join(e.response.delta for e in edge.events if e.WhichOneof("event") == "response")
    assert shown.startswith("Sure. 1. Open the app.") and shown.endswith("今天天气很好！")
    assert "think" not in shown and "<|" not in shown and "Thanks" not in shown
    rates = {e.audio.format.sample_rate for e in edge.events if e.WhichOneof("event") == "audio"}
    assert rates == {22050}
    row = stored(turn_id)
    assert row.status == "done"
    assert row.spoken == SPOKEN
    assert row.reasoning == "The user wants the lamp on. I should say how."
    # stored as shown: no reasoning, no template tokens, nothing after the end of turn
    assert row.response == shown == ANSWER.split("</think>", 1)[1].split("<|im_end|>")[0]


# --------------------------------------------------------------------------- remembered

STORY = " ".join(f"Sentence number {n} of the long story." for n in range(1, 13))


async def test_after_barge_in_the_history_holds_what_the_user_heard(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcripts = ["tell me a story", "stop, what was that"]
    fake_openai.chat_scripts = [ChatScript.pieces(STORY, 6, pause=0.01), ChatScript(("OK.",))]
    fake_openai.speech_samples_per_char = 1200  # 24 kHz: 20 characters a second
    await start(stack, fake_openai)
    async with EdgeClient(stack.address, hello()) as edge:
        first = await utterance(edge, 0)
        await edge.wait_for(first_audio(first))
        started = time.monotonic()  # the edge's clock, as its capture times
        await edge.send([playback(first, Playback.STARTED, started)])
        await wait_finished(edge, first)  # all 12 sentences generated and sent
        assert len(fake_openai.spoken()) == 12
        # The user talks over the answer (in real time, as a microphone delivers it).
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
    assert history(fake_openai, 1) == [
        ("user", "tell me a story"),
        ("assistant", "Sentence number 1 of the long story."),
        ("user", "stop, what was that"),
    ]
    assert len(stored(first).spoken) == 12  # the store keeps all that was spoken


async def test_a_turn_interrupted_before_any_answer_leaves_no_assistant_message(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcripts = ["what is the weather", "and tomorrow"]
    fake_openai.chat_scripts = [ChatScript(("Sunny.",), first_pause=3.0), ChatScript(("Rain.",))]
    await start(stack, fake_openai, params={"llm": {"system_prompt": "Be brief."}})
    async with EdgeClient(stack.address, hello()) as edge:
        first = await utterance(edge, 0)
        await edge.wait_for(lambda e: e.WhichOneof("event") == "transcript")
        second = await utterance(edge, 10_000)  # before the LLM said anything
        await wait_finished(edge, second)
        interrupted = await wait_finished(edge, first)
    assert interrupted.interrupted
    assert history(fake_openai, 1) == [
        ("system", "Be brief."),
        ("user", "what is the weather\nand tomorrow"),  # roles still alternate
    ]
    assert fake_openai.spoken() == ["Rain."]
    assert (stored(first).status, stored(first).spoken) == ("interrupted", [])


async def test_a_transcript_without_words_is_not_answered(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    nothing = [".", "...", "  ", "[BLANK_AUDIO]", "Thanks for watching!"]
    fake_openai.transcripts = [*nothing, "turn on the lamp"]
    fake_openai.chat_scripts = [ChatScript(("The lamp is on.",))]
    await start(stack, fake_openai)
    async with EdgeClient(stack.address, hello()) as edge:
        quiet = []
        for n in range(len(nothing)):
            quiet.append(await utterance(edge, n * 10_000))
            await wait_finished(edge, quiet[-1])
        answered = await utterance(edge, 100_000)
        await wait_finished(edge, answered)
    told = [e.turn.turn_id for e in edge.events if is_turn(Turn.NO_SPEECH)(e)]
    assert told == quiet
    assert [stored(t).status for t in quiet] == ["no_speech"] * len(nothing)
    assert len(fake_openai.requests(CHAT)) == 1  # only the real question reached the LLM
    assert history(fake_openai, 0) == [("user", "turn on the lamp")]
    assert not any(
        e.WhichOneof("event") == "audio" and e.audio.turn_id in quiet for e in edge.events
    )


# --------------------------------------------------------------------------- barge-in


async def test_barge_in_stops_an_answer_that_may_still_be_playing(
    stack: Stack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcripts = ["one", "two", "three", "four"]
    fake_openai.chat_scripts = [ChatScript(("The lamp is on now.",))] * 3
    fake_openai.speech_samples_per_char = 2400  # 19 characters: about 1.9 s of audio
    await start(stack, fake_openai)
    async with EdgeClient(stack.address, hello()) as edge:
        # 1. The whole answer was sent before any playback report: it is playing.
        first = await utterance(edge, 0)
        await wait_finished(edge, first)
        second = await utterance(edge, 10_000)
        await edge.wait_until(lambda _: first in stops(edge))
        await wait_finished(edge, second)
        # 2. The edge reported the answer finished: nothing to stop.
        now = time.monotonic()
        await edge.send([playback(second, Playback.STARTED, now - 2.0)])
        await edge.send([playback(second, Playback.FINISHED, now - 0.1)])
        await asyncio.sleep(0.2)
        third = await utterance(edge, 20_000)
        await wait_finished(edge, third)
        # 3. Started, and longer ago than its audio lasts: over, even without FINISHED.
        await edge.send([playback(third, Playback.STARTED, time.monotonic())])
        await asyncio.sleep(1.9 + 1.2)
        fourth = await utterance(edge, 30_000)
        await wait_finished(edge, fourth)
    assert stops(edge) == [first]


def continuous_speech(copies: int) -> tuple[np.ndarray, int]:
    """The lamp command's speech said ``copies`` times without a pause, then silence."""
    samples, _ = speech()
    voiced = samples[int(0.3 * 16000) : int(1.4 * 16000)]
    return np.concatenate([*([voiced] * copies), np.zeros(16000, np.int16)]), 16000


async def test_reaching_max_turn_s_is_not_a_barge_in(stack: Stack, fake_openai: FakeOpenAI) -> None:
    fake_openai.transcripts = ["the first part", "and the rest"]
    fake_openai.chat_scripts = [
        ChatScript(("First answer.",), first_pause=1.0),  # still thinking when the rest ends
        ChatScript(("Second answer.",)),
    ]
    await start(stack, fake_openai, vad={"max_turn_s": 1.5})
    samples, rate = continuous_speech(2)  # 2.2 s of speech: cut at 1.5 s
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        await edge.wait_until(lambda events: len(finished(edge)) == 2, timeout=30)
    first, second = finished(edge)
    assert not first.interrupted and not second.interrupted
    assert stops(edge) == []
    assert fake_openai.spoken() == ["First answer.", "Second answer."]
    one, two = fake_openai.requests(CHAT)
    assert one.done_at is not None and two.at >= one.done_at  # answered in order
    assert history(fake_openai, 1) == [
        ("user", "the first part"),
        ("assistant", "First answer."),
        ("user", "and the rest"),
    ]
    assert [stored(t.turn_id).status for t in (first, second)] == ["done", "done"]
