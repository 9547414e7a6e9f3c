"""Preemptive generation: a turn's answer started at a pause, before the turn is over.

At the first check point in the silence after speech (:class:`server.turns.TurnPaused`,
``[turn] preemptive = true``) the session starts the turn's pipeline on the audio so
far: the transcription call is finished, the LLM and the first TTS sentence start. What
the run makes is held (:class:`HeldEmit`): nothing reaches the edge, nothing is stored,
nothing joins the history. Then one of two things happens:

- **commit**: the turn ends with the same speech (same start, same end: the user said
  nothing more). The held events go out at once (the first answer audio is usually
  ready by then) and the run goes on as the turn's own; it is stored once and
  remembered once, like any turn.
- **discard**: speech resumes (:class:`server.turns.SpeechResumed`), or the turn ends
  elsewhere (cut at ``max_turn_s``). The run is cancelled (its gRPC calls are cancelled,
  so the workers stop: the LLM engine's generator is closed), what it held is dropped,
  and the turn goes on with the new audio; a later pause may start a new speculation.

Every speculation is counted per session (:class:`SpeculationCounts`, logged when the
stream ends), shown in the turn's trace (span events ``speculation.started`` /
``speculation.committed`` / ``speculation.discarded`` on the ``turn`` span, with the
engine time a discarded run had used), and in the confirmed turn's latency record
(server/latency.py: ``speculation_started_ms``, ``speculation_committed_ms``,
``confirm_ms``, ``speculations_discarded``, ``speculation_model_wasted_ms``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from protos import edge_pb2
from server.latency import TurnLatency
from server.outbox import Emit, OnSent
from server.pipeline import TurnInput, TurnResult
from server.turns import TurnEnded, TurnPaused

log = logging.getLogger(__name__)

Held = tuple[edge_pb2.ServerEvent, OnSent | None]
RunTurn = Callable[[TurnInput, TurnLatency, Emit, TurnResult], Awaitable[None]]


class HeldEmit:
    """An :class:`~server.outbox.Emit` in front of another that can hold events back:
    a speculative turn's (until it is committed or dropped), or an answer stopped by a
    barge-in that may turn out to be false (server/interruption.py)."""

    def __init__(self, emit: Emit, *, holding: bool) -> None:
        self.emit = emit
        self.holding = holding
        self.dropping = False
        self.held: list[Held] = []

    def __call__(self, event: edge_pb2.ServerEvent, on_sent: OnSent | None = None) -> None:
        if self.dropping:
            return
        if self.holding:
            self.held.append((event, on_sent))
        else:
            self.emit(event, on_sent)

    def hold(self) -> None:
        """Hold what comes from now on."""
        self.holding = True

    def release(self, keep: Callable[[edge_pb2.ServerEvent], bool] | None = None) -> None:
        """Send the held events (those ``keep`` accepts), in order, and what comes later
        at once."""
        held, self.held, self.holding = self.held, [], False
        for event, on_sent in held:
            if keep is None or keep(event):
                self.emit(event, on_sent)

    def drop(self) -> int:
        """Forget the held events and everything that comes later; how many were held."""
        dropped = len(self.held)
        self.held, self.dropping = [], True
        return dropped


@dataclass
class SpeculationCounts:
    """A session's speculations: how many started, were committed and were discarded,
    and the engine time the discarded ones used (seconds)."""

    started: int = 0
    committed: int = 0
    discarded: int = 0
    wasted_model_s: float = 0.0

    def summary(self) -> str:
        return (
            f"speculations: {self.started} started, {self.committed} committed, "
            f"{self.discarded} discarded ({self.wasted_model_s * 1000:.0f} ms of model time wasted)"
        )


@dataclass
class Speculation:
    """One speculative run of a turn, started at ``paused``."""

    paused: TurnPaused
    turn: TurnInput
    latency: TurnLatency
    result: TurnResult
    gate: HeldEmit
    task: asyncio.Task[None] = field(init=False)

    def matches(self, ended: TurnEnded) -> bool:
        """The turn ended with the speech the run was started on."""
        return (ended.start_sample, ended.end_sample) == (
            self.paused.start_sample,
            self.paused.end_sample,
        )

    async def answer(self) -> None:
        """Committed: send what was held, the rest as it comes; return when the run is
        over (its failure or cancellation is the turn's)."""
        self.gate.release()
        await self.task


class Speculator:
    """A session's speculative runs: at most one, for the turn being spoken."""

    def __init__(self, preemptive: bool) -> None:
        self.enabled = preemptive
        self.current: Speculation | None = None
        self.counts = SpeculationCounts()
        self._discarded = 0  # discarded for the turn being spoken, and their model time
        self._wasted_s = 0.0
        self._ending: set[asyncio.Future[Any]] = set()

    def start(
        self,
        paused: TurnPaused,
        turn: TurnInput,
        result: TurnResult,
        emit: Emit,
        run: RunTurn,
    ) -> Speculation:
        """Run ``turn`` now (``run``: the pipeline), holding everything it emits."""
        latency = TurnLatency()  # timed from the pause until it is committed
        spec = Speculation(paused, turn, latency, result, HeldEmit(emit, holding=True))
        spec.task = asyncio.create_task(self._run(spec, run), name=f"speculation-{turn.turn_id}")
        self.current = spec
        self.counts.started += 1
        self._event(spec, "speculation.started", {"parley.speculation.check": paused.check})
        return spec

    @staticmethod
    async def _run(spec: Speculation, run: RunTurn) -> None:
        turn = spec.turn
        try:
            await run(turn, spec.latency, spec.gate, spec.result)
        finally:
            if turn.listening is not None:
                turn.listening.stream.cancel()  # no-op once it has answered
                if turn.listening.span.is_recording():  # cancelled before it was used
                    turn.listening.span.end()

    def take(self, ended: TurnEnded) -> Speculation | None:
        """The turn ended: its speculation, committed, when it was made on the same
        speech (else it is discarded and None returned). A committed run's latency
        record is timed from the turn's decision from now on (see server/latency.py)."""
        spec, self.current = self.current, None
        if spec is not None and not spec.matches(ended):
            self._discard(spec, "the turn ended elsewhere")
            spec = None
        if spec is None:
            return None
        latency = spec.latency
        latency.marks["speculation_started"] = latency.decision_at
        latency.decision_at = time.perf_counter()
        latency.mark("speculation_committed")
        # First audio made before the turn was confirmed waited for it: that wait is
        # the ``confirm`` segment, not the send's overhead.
        ready, end = latency.segments.get("send", (None, ""))
        if ready is not None and ready in latency.marks:
            latency.segment("confirm", ready, "speculation_committed")
            latency.segment("send", "speculation_committed", end)
        self.counts.committed += 1
        self._event(spec, "speculation.committed", {})
        return spec

    def figures(self) -> dict[str, float]:
        """The turn just ended: the speculations discarded while it was spoken (count,
        and their engine time in ms; nothing when speculation is off); the tally
        starts again for the next turn."""
        if not self.enabled:
            return {}
        out = {
            "speculations_discarded": float(self._discarded),
            "speculation_model_wasted_ms": self._wasted_s * 1000.0,
        }
        self._discarded, self._wasted_s = 0, 0.0
        return out

    def discard(self, reason: str) -> Speculation | None:
        """Speech resumed: cancel the running speculation (None when there is none)."""
        spec, self.current = self.current, None
        if spec is not None:
            self._discard(spec, reason)
        return spec

    def _discard(self, spec: Speculation, reason: str) -> None:
        dropped = spec.gate.drop()
        spec.task.cancel()  # its worker calls are cancelled with it
        # Nothing of the run executes after the cancel is delivered: its figures are final.
        wasted = spec.latency.used_seconds
        ran_ms = (time.perf_counter() - spec.latency.decision_at) * 1000.0
        self.counts.discarded += 1
        self.counts.wasted_model_s += wasted
        self._discarded += 1
        self._wasted_s += wasted
        self._event(
            spec,
            "speculation.discarded",
            {
                "parley.speculation.reason": reason,
                "parley.speculation.wasted_model_ms": wasted * 1000.0,
                "parley.speculation.ran_ms": ran_ms,
                "parley.speculation.events_dropped": dropped,
            },
        )
        ending = asyncio.ensure_future(asyncio.gather(spec.task, return_exceptions=True))
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)
        log.debug("turn %s: speculation discarded (%s)", spec.turn.turn_id, reason)

    @staticmethod
    def _event(spec: Speculation, name: str, attributes: dict[str, int | float | str]) -> None:
        trace = spec.turn.trace
        if trace is not None:
            trace.span.add_event(name, attributes)

    async def close(self) -> None:
        """Discard a running speculation and wait until every discarded run is over."""
        self.discard("the stream ended")
        while self._ending:
            await asyncio.gather(*list(self._ending), return_exceptions=True)
