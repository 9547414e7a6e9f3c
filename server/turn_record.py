"""A turn's two store writes, and what the edge is told about them.

The row, input audio and frames are written as soon as the turn ends (:meth:`begin`),
the outcome, transcript, answer and latency record when it is over (:meth:`finish`).
``finish`` returns whether both landed: that is what TurnEvent FINISHED's ``stored``
says, and when they did not, the edge also gets an Error STORE_FAILED with the reason
(database locked past the retry time, disk full, read-only). Until a turn's input is
stored, its audio is "unstored" and the edge is not told it may forget it
(:mod:`server.delivery`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from protos import edge_pb2
from server.latency import TurnLatency
from server.outbox import Outbox
from server.pipeline import TurnInput, TurnResult
from server.store import TurnStore
from server.store_failures import StoreFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # done | failed | interrupted | no_speech
    error: str = ""
    stage: str = ""


class TurnRecorder:
    def __init__(self, store: TurnStore, *, session_id: str, pipeline: str, emit: Outbox) -> None:
        self.store, self.session_id, self.pipeline, self.emit = store, session_id, pipeline, emit
        # Ended turns whose input is not stored yet -> where their audio starts.
        self.unstored: dict[str, int] = {}

    def begin(
        self,
        turn: TurnInput,
        position: int,
        audio_start: int,
        audio_taken: tuple[str, str, int],
    ) -> asyncio.Task[None]:
        """Start storing the turn's row and input (``audio_taken``: device, epoch and the
        seq acknowledged once it is stored)."""
        self.unstored[turn.turn_id] = audio_start
        return asyncio.create_task(self._begin(turn, position, audio_taken))

    async def _begin(
        self, turn: TurnInput, position: int, audio_taken: tuple[str, str, int]
    ) -> None:
        try:
            await self.store.begin_turn(
                turn.turn_id,
                self.session_id,
                position,
                self.pipeline,
                turn.pcm,
                turn.sample_rate,
                turn.frames,
                turn.outputs,
                audio_taken=audio_taken,
            )
        finally:
            self.unstored.pop(turn.turn_id, None)

    async def finish(
        self,
        begun: asyncio.Task[None],
        turn: TurnInput,
        outcome: Outcome,
        result: TurnResult,
        latency: TurnLatency,
    ) -> bool:
        """Write the turn's outcome; True when it is stored (else the edge is told why)."""
        try:
            await self.emit.drained()  # the answer is on the wire: its marks are final
            record = latency.record()
            if turn.trace is not None:
                turn.trace.finish(status=outcome.status, error=outcome.error, latency_ms=record)
            await begun
            await self.store.finish_turn(
                turn.turn_id,
                status=outcome.status,
                transcript=result.transcript,
                response=result.response,
                reasoning=result.reasoning,
                spoken=list(result.spoken),
                latency=record,
                error=outcome.error,
                error_stage=outcome.stage,
                trace_id=turn.trace.trace_id if turn.trace else "",
                answer_pcm=bytes(result.audio),
                answer_rate=result.audio_rate,
                stage_outputs={n: out.as_output() for n, out in result.stage_outputs.items()},
            )
            return True
        except StoreFailure as failure:  # logged, with the details, where it happened
            message = f"the turn was not stored: {failure.reason}"
        except Exception as exc:  # a bug: report it, keep the session
            log.exception("could not store turn %s", turn.turn_id)
            message = f"the turn was not stored: internal error: {exc}"
        error = edge_pb2.Error(
            code=edge_pb2.Error.STORE_FAILED, message=message, turn_id=turn.turn_id, stage="store"
        )
        self.emit(edge_pb2.ServerEvent(error=error))
        return False
