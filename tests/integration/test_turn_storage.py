"""A turn is stored, or the edge is told it was not: every utterance in any chunk size
is its own turn, a long chunk does not starve other sessions, and FINISHED says
whether the turn is in the store."""

from __future__ import annotations

import asyncio
import time

from parley import db
from parley.chaos.client import RawStream, audio_chunks, hello, turn_audio
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack

ENGINES = {"stt": FixedStt("lamp"), "llm": ScriptedLlm("Done."), "tts": ToneTts()}


async def finished_turns(stream: RawStream, count: int, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while len(stream.finished()) < count:
            await stream.wait_for(
                lambda e: False, timeout=timeout
            ) if stream.reader.done() else None
            await asyncio.sleep(0.05)


async def test_utterances_in_one_chunk_are_each_their_own_turn_answered_in_order(
    stack: Stack,
) -> None:
    await stack.start(dict(ENGINES), settings={"limits": {"max_audio_chunk_ms": 20_000}})
    three = turn_audio() * 3  # three utterances, a second of silence after each
    stream = await RawStream(stack.address).open()
    stream.send(hello(), *audio_chunks(three, chunk_bytes=len(three)))
    await finished_turns(stream, 3)
    finished = stream.finished()
    assert [t.interrupted for t in finished] == [False] * 3
    assert all(t.stored for t in finished)
    assert not [e for e in stream.events if e.HasField("stop")]  # nobody barged in
    with db.database.connection_context():
        rows = [db.Turn.get_by_id(t.turn_id) for t in finished]
        assert [(r.position, r.status, r.transcript) for r in rows] == [
            (0, "done", "lamp"),
            (1, "done", "lamp"),
            (2, "done", "lamp"),
        ]
        seconds = [r.speech_seconds for r in rows]
    assert max(seconds) - min(seconds) < 0.1 and min(seconds) > 1.0  # whole utterances
    stream.close_send()
    await stream.finish()


async def test_a_long_chunk_is_processed_without_starving_other_sessions(stack: Stack) -> None:
    """The server runs in this test's event loop: the longest the loop went without
    running another task is the longest any other session waited."""
    await stack.start(
        dict(ENGINES),
        settings={"limits": {"max_audio_chunk_ms": 120_000, "max_message_bytes": 8 << 20}},
    )
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(tick())
    long = turn_audio() * 25  # 100 s of audio, 25 utterances, in one message
    big = await RawStream(stack.address).open()
    big.send(hello("big"), *audio_chunks(long, chunk_bytes=len(long)))
    await finished_turns(big, 25, timeout=120)
    ticking.cancel()
    assert len(big.finished()) == 25 and not any(t.interrupted for t in big.finished())
    # Scoring 100 s of audio takes the VAD well over half a second of CPU; in pieces of
    # 0.5 s, nothing else waits for more than a few tens of milliseconds.
    assert max(gaps) < 0.25, f"the event loop was blocked for {max(gaps):.2f} s"
    big.close_send()
    await big.finish()
