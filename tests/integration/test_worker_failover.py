"""A pool of two workers per stage, the first of which is gone (nothing listens on its
address): every call moves to the healthy one and every turn is answered whole: the
transcription is re-sent, the generation retried, and the speech call is made again with
the sentences the failed call had already taken."""

from __future__ import annotations

import dataclasses

from parley.config import PoolConfig
from protos import edge_pb2
from server.app import start_server
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    free_address,
    hello,
    is_turn,
    speech,
)

FINISHED = edge_pb2.TurnEvent.FINISHED
ANSWER = "One thing. Two things. Three things."


async def test_every_stage_fails_over_to_the_healthy_worker(stack: Stack):
    llm, tts = ScriptedLlm(ANSWER, delay=0.01), ToneTts()
    config = await stack.start({"stt": FixedStt(), "llm": llm, "tts": tts})
    await stack.server.stop(grace=None)  # restarted below with two-address pools
    pools = {
        name: dataclasses.replace(pool, addresses=(free_address(), *pool.addresses))
        for name, pool in config.pools.items()
    }
    assert all(isinstance(p, PoolConfig) and len(p.addresses) == 2 for p in pools.values())
    stack.server = await start_server(dataclasses.replace(config, pools=pools), "127.0.0.1:0")
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        for turn in range(2):
            await edge.send(audio_events(samples, rate, start_seq=turn * 10_000))
            await edge.wait_until(
                lambda events, n=turn + 1: sum(map(is_turn(FINISHED), events)) == n
            )
    finished = [e.turn for e in edge.events if is_turn(FINISHED)(e)]
    assert [t.interrupted for t in finished] == [False, False]
    assert not edge.errors()
    sentences = ["One thing.", "Two things.", "Three things."]
    assert tts.texts == sentences * 2  # each sentence spoken once, in order
    audio = [e.audio for e in edge.events if e.WhichOneof("event") == "audio"]
    assert sum(len(a.pcm) for a in audio) == 2 * 3 * int(ToneTts.rate * 0.1) * 2
