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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from protos import edge_pb2
from server.answer import audio_event
from server.outbox import Emit

if TYPE_CHECKING:
    from server.session import ActiveTurn

RESEND_PIECE_S = 0.1  # the rest of an answer is sent again in pieces this long


def _is_audio(event: edge_pb2.ServerEvent) -> bool:
    return event.WhichOneof("event") == "audio" and bool(event.audio.pcm)


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
