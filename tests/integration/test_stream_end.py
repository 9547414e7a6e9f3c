"""Every way a Converse stream ends runs the same cleanup, once: the conversation is
ended in the store, one "disconnected" line is logged, no task is left behind; an edge
that half-closes after a full turn gets its answer; a stalled worker fails its stage
within its deadline counted from the end of speech."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from parley import db
from parley.chaos.client import RawStream, audio_chunks, hello, is_finished, is_kind, turn_audio
from protos import edge_pb2
from server.conversation import run_to_end
from server.edge_service import EdgeServicer
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack
from workers.engines import SttRequest, Transcript

Turn = edge_pb2.TurnEvent


REPO = str(Path(__file__).resolve().parents[2])


def server_tasks() -> set[asyncio.Task[object]]:
    """The loop's tasks running Parley's own code (not gRPC's), other than this test."""
    ours = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if (
            task is not asyncio.current_task()
            and filename.startswith(REPO)
            and "/.venv/" not in filename
        ):
            ours.add(task)
    return ours


async def conversation_ended(session_id: str, timeout: float = 5.0) -> bool:
    async with asyncio.timeout(timeout):
        while True:
            with db.database.connection_context():
                row = db.Conversation.get_by_id(session_id)
            if row.ended_at is not None:
                return True
            await asyncio.sleep(0.05)


def disconnected_lines(caplog: pytest.LogCaptureFixture, session_id: str) -> int:
    return sum(f"disconnected (session {session_id}" in r.getMessage() for r in caplog.records)


async def end(stream: RawStream, how: str) -> None:
    if how == "half-close":
        stream.close_send()
    elif how == "cancel":
        stream.cancel()
    elif how == "drop":
        await stream.channel.close(grace=None)
    await stream.finish()


@pytest.mark.parametrize("how", ["half-close", "cancel", "drop", "deadline", "mid-turn cancel"])
async def test_every_way_a_stream_ends_cleans_up_once(
    stack: Stack, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO, logger="server.edge_service")
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Fine.", delay=0.2), "tts": ToneTts()})
    await asyncio.sleep(0.1)
    before = server_tasks()
    stream = await RawStream(stack.address).open(timeout=1.0 if how == "deadline" else None)
    stream.send(hello())
    welcome = await stream.wait_for(is_kind("welcome"))
    assert welcome is not None
    session_id = welcome.welcome.session_id
    if how == "mid-turn cancel":
        stream.send(*audio_chunks(turn_audio()))
        await stream.wait_for(lambda e: e.HasField("response"))  # the answer is under way
        how = "cancel"
    else:  # a stream that said something after its Hello keeps its conversation
        stream.send(edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=1.0)))
        assert await stream.wait_for(is_kind("pong")) is not None
    await end(stream, how)
    assert await conversation_ended(session_id)
    await asyncio.sleep(0.3)
    assert disconnected_lines(caplog, session_id) == 1
    left = {t.get_coro().__qualname__ for t in server_tasks() - before}  # type: ignore[union-attr]
    assert not left, f"tasks left behind: {left}"


@pytest.mark.parametrize("how", ["half-close", "cancel", "drop"])
async def test_a_stream_that_sends_nothing_after_its_hello_leaves_no_conversation(
    stack: Stack, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """``parley edge --dry-run`` (or an edge gone right after connecting): the device is
    seen, the cleanup runs once, but no empty conversation row is left behind."""
    caplog.set_level(logging.INFO, logger="server.edge_service")
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm(), "tts": ToneTts()})
    stream = await RawStream(stack.address).open()
    stream.send(hello(device_id="dry"))
    welcome = await stream.wait_for(is_kind("welcome"))
    assert welcome is not None
    session_id = welcome.welcome.session_id
    with db.database.connection_context():
        assert db.Conversation.get_or_none(db.Conversation.id == session_id) is not None
    await end(stream, how)
    async with asyncio.timeout(5.0):  # the cleanup has run
        while True:
            if disconnected_lines(caplog, session_id):
                break
            await asyncio.sleep(0.05)
    with db.database.connection_context():
        assert db.Conversation.get_or_none(db.Conversation.id == session_id) is None
        assert db.Device.get_by_id("dry").last_seen is not None
    assert disconnected_lines(caplog, session_id) == 1


async def test_an_edge_that_half_closes_after_a_full_turn_gets_its_answer(stack: Stack) -> None:
    await stack.start(
        {"stt": FixedStt(), "llm": ScriptedLlm("Fine, done.", delay=0.05), "tts": ToneTts()}
    )
    stream = await RawStream(stack.address).open()
    stream.send(hello(), *audio_chunks(turn_audio()))
    stream.close_send()  # nothing more to say: the answer must still come
    assert await stream.finish(timeout=20) == grpc.StatusCode.OK
    (finished,) = stream.finished()
    assert not finished.interrupted and finished.stored
    assert any(e.HasField("audio") and e.audio.last for e in stream.events)
    with db.database.connection_context():
        assert db.Turn.get_by_id(finished.turn_id).status == "done"


async def test_a_second_and_third_cancellation_do_not_cut_the_cleanup_short() -> None:
    finished = asyncio.Event()

    async def cleanup() -> None:
        await asyncio.sleep(0.2)
        finished.set()

    task = asyncio.create_task(run_to_end(cleanup()))
    for _ in range(3):
        await asyncio.sleep(0.02)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_a_handler_cancelled_twice_mid_turn_still_stores_and_ends_once(
    stack: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="server.edge_service")
    handlers: list[asyncio.Task[object]] = []
    converse = EdgeServicer.Converse

    async def recorded(self: EdgeServicer, *args: Any) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await converse(self, *args)

    monkeypatch.setattr(EdgeServicer, "Converse", recorded)
    await stack.start(
        {"stt": FixedStt(), "llm": ScriptedLlm("word " * 200, delay=0.05), "tts": ToneTts()}
    )
    stream = await RawStream(stack.address).open()
    stream.send(hello(), *audio_chunks(turn_audio()))
    welcome = await stream.wait_for(is_kind("welcome"))
    assert welcome is not None
    await stream.wait_for(lambda e: e.HasField("response"))
    (handler,) = handlers
    handler.cancel()
    await asyncio.sleep(0)
    handler.cancel()  # again, while the cleanup runs
    await asyncio.wait([handler], timeout=10)
    session_id = welcome.welcome.session_id
    assert await conversation_ended(session_id)
    assert disconnected_lines(caplog, session_id) == 1
    with db.database.connection_context():
        (turn,) = db.Turn.select().where(db.Turn.conversation == session_id)
    assert turn.status == "interrupted" and turn.response  # stored with what it had
    await stream.finish()


class StalledStt:
    """Takes the audio and never answers (a worker stopped with SIGSTOP looks the same
    from the server: the call stays open and silent)."""

    model = "stalled"

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        async for _ in audio:
            pass
        await asyncio.Event().wait()
        yield Transcript("never")


async def test_a_stalled_stt_worker_fails_within_its_deadline_from_the_end_of_speech(
    stack: Stack,
) -> None:
    await stack.start(
        {"stt": StalledStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()},
        server={"stt_timeout_s": 1.0},  # max_turn_s stays 30: the call opened at speech start
    )
    stream = await RawStream(stack.address).open()
    stream.send(hello(), *audio_chunks(turn_audio()))
    ended = await stream.wait_for(lambda e: e.HasField("turn") and e.turn.kind == Turn.SPEECH_ENDED)
    assert ended is not None
    ended_at = time.monotonic()
    error = await stream.wait_for(is_kind("error"), timeout=10)
    failed_after = time.monotonic() - ended_at
    assert error is not None and error.error.stage == "stt"
    assert error.error.code == edge_pb2.Error.STAGE_UNAVAILABLE
    assert "missed its deadline" in error.error.message
    assert 0.8 < failed_after < 3.0  # 1 s after the end of speech, not 31 s
    finished = await stream.wait_for(is_finished)
    assert finished is not None and finished.turn.stored
    stream.close_send()
    await stream.finish()
