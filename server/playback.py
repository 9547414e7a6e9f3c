"""How far the edge got playing one turn's answer: may it still be playing, and which
sentences did the user hear before it was stopped?

Decided from what was sent (each sentence's audio and its duration) and the edge's
playback reports (STARTED, FINISHED, INTERRUPTED, each with the edge-clock time of the
sound at the speaker) when they have arrived, not from one report alone: an answer
sent in full before the edge's STARTED report arrives is still playing, and an edge
that reports nothing is assumed to play what it was sent, from when it was sent.

Estimates run on the server's monotonic clock. A report's edge time is placed on it
with ``clock``, the session's estimate of the edge clock's "now"
(:meth:`server.edge_clock.EdgeClock.now`); when the edge reported both the start and
the stop, their difference is used as is.

An answer stopped for speech that turned out to have no words is resumed
(:meth:`AnswerPlayback.resume`, server/interruption.py): from then on the reports and
estimates are about its rest, which plays from where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# How long after the estimated end of its audio an answer may still be heard: the
# edge's jitter buffer and device latency, and an uplink that lags (seconds).
PLAYING_SLACK_S = 1.0


def _unknown() -> float | None:
    return None


class AnswerPlayback:
    """One turn's answer audio as sent to the edge, and the edge's playback reports."""

    def __init__(self, clock: Callable[[], float | None] = _unknown) -> None:
        self.clock = clock
        self.sent_seconds = 0.0  # answer audio sent so far
        self.sentence_starts: list[float] = []  # offset of each sentence's audio (s)
        self.first_sent: float | None = None  # server time of the first audio sent
        # The edge's reports: edge time, and the same moment on the server's clock.
        self.reports: dict[str, tuple[float, float]] = {}
        self.stopped: float | None = None  # server time the server stopped it
        # Seconds of it heard before it was stopped and resumed (the rest plays after).
        self.resumed_at = 0.0

    def sent(self, sentence: int, seconds: float) -> None:
        """``seconds`` of audio of TTS sentence ``sentence`` went to the edge."""
        if self.first_sent is None:
            self.first_sent = time.monotonic()
        while len(self.sentence_starts) <= sentence:
            self.sentence_starts.append(self.sent_seconds)
        self.sent_seconds += seconds

    def report(self, kind: str, edge_time: float) -> None:
        """A PlaybackEvent: "started", "finished" or "interrupted" at ``edge_time``."""
        if kind in self.reports and kind == "started":
            return
        now, edge_now = time.monotonic(), self.clock()
        ago = max(0.0, edge_now - edge_time) if edge_now is not None else 0.0
        self.reports[kind] = (edge_time, now - ago)

    def stop(self) -> None:
        """The server told the edge to stop (barge-in): it stops about now."""
        if self.stopped is None:
            self.stopped = time.monotonic()

    def resume(self) -> float:
        """It was stopped, and its rest is sent again now (a false interruption): the
        reports and estimates are about the rest from now on. Returns where in the
        answer (seconds) the rest starts: what was heard before the stop."""
        played = self.played_seconds()
        self.resumed_at = min(played, self.sent_seconds)
        self.reports, self.stopped = {}, None
        self.first_sent = time.monotonic()
        return self.resumed_at

    @property
    def _start(self) -> float | None:
        started = self.reports.get("started")
        return started[1] if started is not None else self.first_sent

    def may_be_playing(self) -> bool:
        """Whether the edge may still be playing this answer now."""
        ended = "finished" in self.reports or "interrupted" in self.reports
        if self.sent_seconds <= 0 or ended or self.stopped is not None:
            return False
        start = self._start
        rest = self.sent_seconds - self.resumed_at
        return start is None or time.monotonic() < start + rest + PLAYING_SLACK_S

    def played_seconds(self) -> float:
        """Seconds of the answer the user heard (``inf`` when it was never stopped)."""
        started, interrupted = self.reports.get("started"), self.reports.get("interrupted")
        if started is not None and interrupted is not None:
            return self.resumed_at + max(0.0, interrupted[0] - started[0])
        stop = interrupted[1] if interrupted is not None else self.stopped
        if stop is None or ("finished" in self.reports and interrupted is None):
            return math.inf
        start = self._start
        if start is None:  # stopped before any audio went out
            return self.resumed_at
        return self.resumed_at + max(0.0, stop - start)

    def heard(self) -> int:
        """How many sentences, from the first, the user heard (at least their start)."""
        played = self.played_seconds()
        if played == math.inf:
            return len(self.sentence_starts) if self.stopped is not None else 1 << 30
        return sum(1 for start in self.sentence_starts if start < played)


@dataclass(frozen=True)
class HeardTurn:
    """An earlier turn as the conversation history tells it: what the user said, and
    the part of the answer they heard (an answer stopped by barge-in is cut at the
    sentence that was playing; one the user never heard is empty)."""

    user: str
    spoken: Sequence[str]  # the sentences sent to the TTS
    playback: AnswerPlayback

    @property
    def answer(self) -> str:
        return " ".join(self.spoken[: self.playback.heard()])
