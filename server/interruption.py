"""Barge-in that may be false: an answer stopped by new speech waits to learn whether
that speech had words.

New speech (a confirmed SpeechStarted: longer than ``[vad] min_speech_ms``, so a click
or a short cough never gets here) while an answer is made or may still be playing stops
it on the edge at once (StopPlayback), but does not throw it away: the answer is *held*
(:class:`Interrupted`). A running answer goes on, and what it makes is kept back
(:class:`server.speculation.HeldEmit`). When the new speech's transcript is known:

- **words**: a real interruption. A running answer is cancelled (its worker calls are
  cancelled) and stored as ``interrupted``; the history keeps what was heard of it
  (server/playback.py). This happens before the new turn's LLM call is built, so its
  history includes the interrupted answer.
- **no words** (server/no_speech.py: a cough, an "mm-hmm" or noise the STT turns into
  nothing): a false interruption. The answer resumes where it stopped: its audio from
  the point the edge reported it had played to (its STARTED and INTERRUPTED reports;
  without them, the server's estimate) is sent again, the first chunk with
  ``AudioOut.resume`` (the edge plays a stopped turn's audio again), then what was held;
  a running answer carries on. The history and the store hold the whole answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from protos import edge_pb2
from server.answer import audio_event
from server.latency import TurnLatency
from server.outbox import Emit
from server.pipeline import Exchange, TurnInput, TurnResult
from server.playback import AnswerPlayback
from server.speculation import HeldEmit

log = logging.getLogger(__name__)

RESEND_PIECE_S = 0.1  # the rest of an answer is sent again in pieces this long


def _is_audio(event: edge_pb2.ServerEvent) -> bool:
    return event.WhichOneof("event") == "audio" and bool(event.audio.pcm)


@dataclass
class ActiveTurn:
    """A turn a session is answering (or has answered: its answer may still play)."""

    turn_id: str
    task: asyncio.Task[None]
    latency: TurnLatency
    result: TurnResult
    gate: HeldEmit  # what the turn sends goes through it (held after a barge-in)
    arrival: int = 0  # the audio chunk in which the turn ended (see Session._chunk_of)

    @property
    def playback(self) -> AnswerPlayback:
        return self.result.playback


@dataclass
class Interrupted:
    """An answer (its turn: running, or done and maybe still playing) stopped by the
    speech of turn ``by``, until that speech's words are known."""

    entry: ActiveTurn
    by: str

    def cancel(self) -> None:
        """A real interruption: a running answer is cancelled, what it held dropped."""
        self.entry.gate.drop()
        if not self.entry.task.done():
            self.entry.task.cancel()

    def resume(self, emit: Emit) -> float:
        """A false interruption: send the answer's audio again from where the edge
        stopped playing it, then what was held back, and let a running answer go on.
        Returns where the resumed audio starts in the answer (seconds)."""
        entry = self.entry
        result, turn_id, gate = entry.result, entry.turn_id, entry.gate
        rate = result.audio_rate or 16000
        at = result.playback.resume()
        rest = bytes(result.audio[min(len(result.audio), int(at * rate) * 2) :])
        emit(audio_event(turn_id, 0, b"", rate, resume=True))
        step = 2 * max(1, int(rate * RESEND_PIECE_S))
        for seq, offset in enumerate(range(0, len(rest), step), start=1):
            emit(audio_event(turn_id, seq, rest[offset : offset + step], rate))
        last_held = any(e.audio.last for e, _ in gate.held if e.WhichOneof("event") == "audio")
        # The held audio is in ``rest`` already; the rest of what was held goes out.
        gate.release(keep=lambda event: not _is_audio(event))
        if entry.task.done() and not last_held:  # its end was sent before the stop
            emit(audio_event(turn_id, len(rest) // step + 1, b"", rate, last=True))
        return at


class BargeIn:
    """A session's barge-ins: the answers new speech stops, and the one held until
    that speech's words are known."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.held: Interrupted | None = None

    def stop(
        self,
        active: ActiveTurn | None,
        queued: Sequence[ActiveTurn],
        playbacks: Mapping[str, AnswerPlayback],
        *,
        by: str,
    ) -> None:
        """The speech of turn ``by`` started: stop the answers being made, waiting in
        line, or that may still be playing (judged from what was sent, its length and
        the edge's reports, server/playback.py). Turns in line are cancelled (nothing
        of them was said); the active turn's answer is held.

        Each turn is stopped once: a stopped turn is only storing what it had, and a
        second cancel would cut that short (and its FINISHED)."""
        turns = [*([active] if active is not None else []), *queued]
        running = {t.turn_id for t in turns if not t.task.done()}
        for entry in queued:
            if entry.turn_id in running and entry.playback.stopped is None:
                entry.task.cancel()
                entry.playback.stop()
        active_id = active.turn_id if active is not None else ""
        for turn_id, playback in playbacks.items():
            if playback.stopped is None and (
                (turn_id == active_id and turn_id in running) or playback.may_be_playing()
            ):
                playback.stop()
                stop = edge_pb2.StopPlayback(turn_id=turn_id, reason="barge-in")
                self.emit(edge_pb2.ServerEvent(stop=stop))
                if active is not None and turn_id == active_id:
                    self.close()  # an answer held before: its speech came to no end
                    active.gate.hold()
                    self.held = Interrupted(active, by=by)

    async def words(
        self, turn: TurnInput, history: Callable[[], tuple[Exchange, ...]], transcript: str
    ) -> None:
        """``turn``'s transcript has words and its answer is about to start: the answer
        its speech stopped is over, and ``turn.history`` is taken again (``history()``)
        so its LLM hears what of that answer was heard."""
        held = self.held
        if held is None or held.by != turn.turn_id:
            return
        self.held = None
        held.cancel()
        await asyncio.wait([held.entry.task])  # its part of the history is in
        turn.history = history()

    def settle(self, turn_id: str, *, no_speech: bool) -> ActiveTurn | None:
        """Turn ``turn_id`` is over: an answer its speech stopped resumes if the speech
        had no words (a false interruption), else it stays stopped. Returns the resumed
        answer's turn when it is still running."""
        held = self.held
        if held is None or held.by != turn_id:
            return None
        self.held = None
        if not no_speech:
            held.cancel()
            return None
        at = held.resume(self.emit)
        log.info(
            "turn %s had no words: answer %s resumed at %.2f s", turn_id, held.entry.turn_id, at
        )
        return held.entry if not held.entry.task.done() else None

    def close(self) -> None:
        """Stop the held answer for good (the stream ends, or new speech came first)."""
        if self.held is not None:
            self.held.cancel()
            self.held = None
