"""End of turn by model: one session's questions to Smart Turn, and the facts they leave.

With ``[turn] strategy = "smart_turn"`` the turn detector reports check points in the
silence after speech (:class:`~server.turns.TurnPaused`, after ``check_after_ms`` and
then every ``recheck_ms``). At each, :class:`Endpointer` asks the end-of-turn model
(server/smart_turn.py) whether the utterance is complete, off the event loop through
the server's shared scorer, while the detector goes on taking audio. If the answer is
>= ``threshold`` and that pause is still current (no speech since, the turn not ended
by ``max_silence_ms`` meanwhile), the turn ends there (:meth:`TurnDetector.end_turn`)
and the session handles the :class:`~server.turns.TurnEnded` as any other. Speech
coming back (:class:`~server.turns.SpeechResumed`) makes an answer still on its way
stale. One question per session is in flight at a time; check points reached
meanwhile are folded into one, the latest.

What the model hears (:func:`question_audio`): the last 8 s of the stream up to the
check point (the detector keeps them: ``TurnDetector(history_samples=HISTORY)``), not
only the open turn's audio. Speech that goes on right after a turn was ended (cut too
early, or the user adding to it) is then heard as the utterance it continues: on
jfk.flac, "ask not" alone sounds complete to the model (0.62), after "And so my fellow
Americans" it does not (0.04). Audio older than the stream's start is zeros.

Each turn's :class:`EndpointingFacts` (the strategy, how it was decided, the check
points asked, the model's time and last probability) go into its latency record and
its stored outputs (``Turn.outputs["endpointing"]``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from parley.config import TurnConfig
from server.smart_turn import CLIP_SAMPLES, ClipScorer, clip
from server.turns import (
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnPaused,
)
from server.vad_scheduler import ScoredStream, StreamClosed

log = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]


HISTORY = CLIP_SAMPLES  # audio a smart_turn session's detector keeps buffered


def question_audio(detector: TurnDetector, paused: TurnPaused) -> Float32Array:
    """The audio the end-of-turn model hears at ``paused``: the stream's last 8 s up to
    the check point (as far back as the detector holds); float32 mono."""
    start = max(0, paused.decided_sample - CLIP_SAMPLES)
    return detector.audio_between(start, paused.decided_sample)


@dataclass
class EndpointingFacts:
    """How one turn's end was decided."""

    strategy: str
    decided_by: str = ""  # model | silence (min_silence_ms, or max_silence_ms) | max_turn
    checks: int = 0  # check points the model answered
    model_s: float = 0.0  # the last answer's time: check point -> probability (s, wall)
    probability: float | None = None  # the last answer
    silence_s: float = 0.0  # end of speech -> turn decision (audio seconds)

    def record(self) -> dict[str, float]:
        """Entries for the latency record (ms); the model's only where it was asked."""
        out = {"endpointing_checks": float(self.checks)}
        if self.checks:
            out["endpointing_model_ms"] = self.model_s * 1000.0
            out["endpointing_probability"] = float(self.probability or 0.0)
        return out

    def output(self) -> dict[str, Any]:
        """``Turn.outputs["endpointing"]``."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "decided_by": self.decided_by,
            "checks": self.checks,
            "silence_ms": round(self.silence_s * 1000.0, 1),
        }
        if self.checks:
            out["model_ms"] = round(self.model_s * 1000.0, 1)
            out["probability"] = round(float(self.probability or 0.0), 4)
        return out


class Endpointer:
    """One session's end-of-turn decisions.

    ``observe`` every detector event (from the session's event handler, in order);
    ``on_ended`` gets each TurnEnded the model decided (the session handles it like one
    from the detector); :meth:`facts` says how an ended turn was decided. ``scorer``:
    the session's stream on the server's Smart Turn scheduler (None unless the strategy
    is smart_turn). :meth:`close` cancels a question in flight."""

    def __init__(
        self,
        turn: TurnConfig,
        detector: TurnDetector,
        scorer: ScoredStream[ClipScorer] | None,
        on_ended: Callable[[TurnEnded], Awaitable[None]],
    ) -> None:
        if turn.strategy == "smart_turn" and scorer is None:
            raise ValueError("the smart_turn strategy needs the end-of-turn model's scorer")
        self.turn, self.detector = turn, detector
        self._scorer, self._on_ended = scorer, on_ended
        self._rate = detector.sample_rate
        self._current = EndpointingFacts(turn.strategy)
        self._asking: asyncio.Task[None] | None = None
        self._next: TurnPaused | None = None  # a check point reached while asking
        self._model_ended: TurnEnded | None = None

    def observe(self, event: TurnEvent) -> None:
        """A detector event, in order (called before the session handles it)."""
        if isinstance(event, SpeechStarted):
            self._current = EndpointingFacts(self.turn.strategy)
        elif isinstance(event, SpeechResumed):
            self._next = None  # an answer on its way is stale: end_turn will say so
        elif isinstance(event, TurnPaused) and self._scorer is not None:
            if self._asking is not None and not self._asking.done():
                self._next = event
            else:
                self._asking = asyncio.create_task(self._ask(event), name="smart-turn")

    def facts(self, ended: TurnEnded) -> EndpointingFacts:
        """How ``ended`` was decided (call once per TurnEnded, when handling it)."""
        facts, self._current = self._current, EndpointingFacts(self.turn.strategy)
        if ended is self._model_ended:
            facts.decided_by = "model"
        else:
            facts.decided_by = "max_turn" if ended.forced else "silence"
        facts.silence_s = max(0.0, (ended.decided_sample - ended.end_sample) / self._rate)
        return facts

    async def close(self) -> None:
        self._next = None
        if self._asking is not None:
            self._asking.cancel()
            await asyncio.gather(self._asking, return_exceptions=True)
        if self._scorer is not None:
            self._scorer.close()

    async def _ask(self, paused: TurnPaused) -> None:
        """Ask at ``paused``, then at the latest check point reached meanwhile."""
        assert self._scorer is not None
        question: TurnPaused | None = paused
        while question is not None:
            self._next = None
            facts = self._current
            started = time.perf_counter()
            audio = clip(question_audio(self.detector, question))
            try:
                (probability,) = await self._scorer.score(audio[None])
            except StreamClosed:
                return
            except Exception:  # the model failed: the turn ends by silence instead
                log.exception("end-of-turn model failed; the silence decides this turn")
                return
            if facts is not self._current:  # that turn is over already
                return
            facts.checks += 1
            facts.model_s = time.perf_counter() - started
            facts.probability = float(probability)
            if probability >= self.turn.threshold:
                ended = self.detector.end_turn(question)
                if ended is not None:
                    self._model_ended = ended
                    await self._on_ended(ended)
                    return
            question = self._next
