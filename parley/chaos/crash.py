"""The server killed (SIGKILL) at random moments while the real edge agent talks to it:
every utterance must become exactly one stored turn, with all of its audio.

The agent (``edge.agent.EdgeAgent``, in this process, with a scripted microphone)
speaks the bundled command ``utterances`` times, a second and more apart, and keeps
streaming silence in between. Before each utterance the harness decides (from
``seed``) whether to kill the server during it, at a random moment between the start
of the speech and the end of the answer, and how long to leave it down. At the end
the store must hold one turn per utterance (none lost, none twice), each as long as
the clip's speech (none cut), ``done`` or, when the kill fell while it was being
answered, ``aborted`` by the next start; the agent's counters must add up (every
captured chunk acknowledged, buffered or dropped).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from parley.chaos.client import RATE, speech_pcm
from parley.chaos.faults import count_tracebacks, stack
from parley.config import EdgeConfig, VadConfig

GAP_S = 1.5  # silence after each utterance: more than min_silence_ms, so the turn ends


def reference_turn_seconds(speech: np.ndarray) -> float:
    """The turn the server's VAD finds in the clip when it is sent without a break."""
    from server.turns import TurnDetector, TurnEnded
    from server.vad import SileroVad

    detector = TurnDetector(VadConfig(), SileroVad(), RATE)
    audio = np.concatenate([speech, np.zeros(RATE * 2, np.int16)]).astype(np.float32) / 32768
    events = [e for i in range(0, audio.size, 320) for e in detector.feed(audio[i : i + 320])]
    (ended,) = [e for e in events if isinstance(e, TurnEnded)]
    return float(ended.audio.size / RATE)


def _turns(database_url: str, device: str) -> list[tuple[str, float]]:
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=30) as db:
        rows = db.execute(
            "SELECT turn.status, turn.speech_seconds FROM turn "
            "JOIN conversation ON turn.conversation_id = conversation.id "
            "WHERE conversation.device_id = ? ORDER BY turn.created_at",
            (device,),
        ).fetchall()
    return [(str(status), float(seconds)) for status, seconds in rows]


async def exactly_once(
    home: Path, *, utterances: int, seed: int, kill_probability: float = 0.7
) -> dict[str, Any]:
    from edge.agent import EdgeAgent
    from edge.scripted_mic import ScriptedSource
    from edge.speaker import NullSpeaker
    from edge.tls import secure_dial

    rng = random.Random(seed)
    speech = np.frombuffer(speech_pcm(), np.int16)
    reference = reference_turn_seconds(speech)
    device = "crash-edge"
    kills: list[float] = []
    async with stack(home) as (server, _):
        source = ScriptedSource()
        config = EdgeConfig(
            server=server.address, device_id=device, camera="none", reconnect_max_s=0.5
        )
        agent = EdgeAgent(
            config, source=source, speaker=NullSpeaker(), dial=lambda: secure_dial(server.address)
        )
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            for _ in range(utterances):
                spoken = source.say(speech)
                started = time.monotonic()
                if rng.random() < kill_probability:
                    at = rng.uniform(0.0, spoken + GAP_S)  # in the speech, or its answer
                    await asyncio.sleep(at)
                    server.kill()
                    kills.append(round(at, 2))
                    await asyncio.sleep(rng.uniform(0.0, 1.0))  # down for a while
                    await server.start()
                await asyncio.sleep(max(0.0, started + spoken + GAP_S - time.monotonic()))
            settle = time.monotonic() + 30
            while time.monotonic() < settle:  # every utterance reaches the store
                await asyncio.sleep(0.5)
                done = [t for t in _turns(server.database_url, device) if t[0] != "running"]
                if len(done) >= utterances and not agent.ring.unsent:
                    break
            await asyncio.sleep(1.0)  # a repeat would show up now
        finally:
            stop.set()
            await asyncio.wait([running], timeout=10)
            running.cancel()
        stats = agent.snapshot()
        turns = _turns(server.database_url, device)
        crashes = count_tracebacks(server)
    seconds = [s for _, s in turns]
    cut = [round(s, 2) for s in seconds if abs(s - reference) > 0.25]
    accounted = (
        stats["chunks_sent"]
        + stats["chunks_buffered"]
        + stats["chunks_dropped"]
        + stats["chunks_unconfirmed"]
    )
    return {
        "utterances": utterances,
        "kills": len(kills),
        "killed_at_s": kills,
        "turns_stored": len(turns),
        "turns_lost": max(0, utterances - len(turns)),
        "turns_twice": max(0, len(turns) - utterances),
        "turns_cut": cut,
        "statuses": {s: sum(1 for t in turns if t[0] == s) for s in {t[0] for t in turns}},
        "speech_seconds": {
            "reference": round(reference, 3),
            "median": round(statistics.median(seconds), 3) if seconds else None,
        },
        "chunks": {
            "captured": stats["chunks_captured"],
            "acknowledged": stats["chunks_sent"],
            "resent": stats["chunks_resent"],
            "dropped": stats["chunks_dropped"],
            "accounted": accounted == stats["chunks_captured"],
        },
        "crashes": crashes,
    }
