"""Streaming endpointing: Silero VAD probabilities in, turn events out.

The state machine is silero's own ``get_speech_timestamps`` run one window at a time
(speech starts at a window with probability >= ``threshold``; a turn closes once the
probability has stayed below ``neg_threshold`` for ``min_silence_ms``, measured from
the first silent window, which is the turn's end; any window >= ``threshold`` in
between cancels the pending end; regions of ``min_speech_ms`` or less are dropped), so
for the same settings it finds the same regions as silero's offline pass. Two
additions for live use: :class:`SpeechStarted` is emitted at the first moment the
region is certain to be long enough to keep (so clicks do not barge in), and a turn
is cut at ``max_turn_s`` (``forced``).

With a :class:`~parley.config.TurnConfig` the detector also reports check points in
the silence after speech (:class:`TurnPaused`, and :class:`SpeechResumed` if speech
comes back): the end-of-turn model is asked there and may end the turn early
(:meth:`TurnDetector.end_turn`), and an answer may be prepared speculatively.

Cutting audio into windows (:meth:`TurnDetector.push`) is apart from the state machine
(:meth:`TurnDetector.step`), so the probabilities can come from elsewhere: a server
scores every stream's windows together (server/vad_scheduler.py). :meth:`feed` does
both with the detector's own VAD, one window at a time.

Sample positions count from the start of the stream at the detector's rate, so the
caller can map them to capture times on the edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from parley.config import TurnConfig, VadConfig
from server.vad import VadModel

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech has lasted longer than ``min_speech_ms``: a turn is under way."""

    start_sample: int  # first sample of the first speech window
    audio_start_sample: int  # where the turn's audio will start (pre-roll included)
    decided_sample: int  # stream position scored when the speech was confirmed


@dataclass(frozen=True, slots=True, eq=False)
class TurnEnded:
    """A turn closed: after enough silence, at ``max_turn_s`` (forced), or at flush."""

    start_sample: int  # speech start (as in SpeechStarted)
    end_sample: int  # speech end: start of the silence that closed the turn
    audio: Float32Array  # start - pre_roll .. end + post_roll (clipped to the stream)
    audio_start_sample: int  # stream position of audio[0]
    decided_sample: int  # stream position scored when the turn was closed
    forced: bool = False  # closed by max_turn_s, not by silence

    @property
    def audio_end_sample(self) -> int:
        return self.audio_start_sample + len(self.audio)


@dataclass(frozen=True, slots=True)
class TurnPaused:
    """A check point in the silence after a confirmed turn's speech: the silence has
    lasted ``TurnConfig.check_after_ms`` (``check`` 0), then each ``recheck_ms`` more.
    The turn may be over: the end-of-turn model is asked (:meth:`TurnDetector.end_turn`
    ends it), and the answer may be prepared speculatively. Emitted only when the
    detector has a TurnConfig with strategy ``smart_turn`` or ``preemptive``."""

    start_sample: int  # speech start (as in SpeechStarted)
    end_sample: int  # speech end so far: start of the silence
    audio_start_sample: int  # where the turn's audio starts (pre-roll included)
    decided_sample: int  # stream position scored when the check point was reached
    check: int  # 0 at the first check point, then 1, 2, ...


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back after a :class:`TurnPaused`: the turn goes on (a speculative
    answer made at the pause is stale)."""

    resumed_sample: int  # first sample of the window with speech again
    decided_sample: int


TurnEvent = SpeechStarted | TurnPaused | SpeechResumed | TurnEnded


class TurnDetector:
    """Finds turns in one stream of float32 mono audio at the VAD's sample rate."""

    def __init__(
        self,
        config: VadConfig,
        vad: VadModel,
        sample_rate: int = 16000,
        turn: TurnConfig | None = None,
        *,
        history_samples: int = 0,
    ) -> None:
        """``turn`` None: silero's endpointing alone (close after ``min_silence_ms``), no
        check points. With a TurnConfig: check points (:class:`TurnPaused`) when its
        strategy is ``smart_turn`` or it is ``preemptive``; with ``smart_turn`` the
        silence only closes the turn after ``max_silence_ms`` (the caller ends it sooner
        with :meth:`end_turn` when the end-of-turn model says so).
        ``history_samples``: at least this much of the latest scored audio stays
        buffered, turn or not, for :meth:`audio_between` (the end-of-turn model hears
        the last 8 s of the stream)."""
        if sample_rate != vad.sample_rate:
            raise ValueError(f"the VAD runs at {vad.sample_rate} Hz, not {sample_rate}")
        self.config, self.sample_rate = config, sample_rate
        self._vad, self._window = vad, vad.window
        per_ms = sample_rate / 1000
        self._min_speech = per_ms * config.min_speech_ms
        self.turn = turn
        smart = turn is not None and turn.strategy == "smart_turn"
        silence_ms = turn.max_silence_ms if turn is not None and smart else config.min_silence_ms
        self._min_silence = per_ms * silence_ms
        self._checks = turn is not None and (smart or turn.preemptive)
        self._check_after = per_ms * turn.check_after_ms if turn is not None else 0.0
        self._recheck = per_ms * turn.recheck_ms if turn is not None else 0.0
        self._max_turn = sample_rate * config.max_turn_s
        self._pre_roll = round(per_ms * config.pre_roll_ms)
        self._post_roll = round(per_ms * config.post_roll_ms)
        self._history = max(0, history_samples)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample fed is sample 0 of a new stream."""
        self._stream = self._vad.new_stream()
        self._pending = np.zeros(0, dtype=np.float32)  # fed, not yet scored
        self._pos = 0  # samples scored (start of the next window)
        self._unscored = 0  # windows pushed, not stepped yet
        self._fed = 0
        self._chunks: deque[Float32Array] = deque()  # recent audio, from _chunks_start
        self._chunks_start = 0
        self._triggered = False
        self._confirmed = False
        self._start = 0
        self._temp_end = 0
        self._paused = 0  # check points reached in the current silence

    @property
    def samples_fed(self) -> int:
        return self._fed

    @property
    def buffered_samples(self) -> int:
        """Audio held for pre-roll, history or the open turn (bounded while no turn is
        open)."""
        return sum(chunk.size for chunk in self._chunks)

    @property
    def in_turn(self) -> bool:
        """True between SpeechStarted and TurnEnded."""
        return self._confirmed

    @property
    def needed_from(self) -> int:
        """Audio before this position can never be part of a turn any more (it is
        behind the open speech's pre-roll, or behind the next window's)."""
        start = self._start if self._triggered else self._pos
        return max(0, start - self._pre_roll)

    @property
    def committed_sample(self) -> int:
        """While a turn is open: audio before this sample is certainly part of its
        TurnEnded.audio, however the turn ends (so it can be streamed ahead)."""
        if not self._confirmed:
            return 0
        end = self._temp_end or self._pos  # the earliest the speech can still end
        return min(self._fed, end + self._post_roll)

    def audio_between(self, start: int, end: int) -> Float32Array:
        """Buffered audio [start, end) (the open turn's audio is always buffered)."""
        parts: list[Float32Array] = []
        chunk_end = self._fed  # the chunks cover [_chunks_start, _fed)
        for chunk in reversed(self._chunks):  # recent audio is asked for: walk back
            chunk_start = chunk_end - chunk.size
            if chunk_start < end and chunk_end > start:
                parts.append(chunk[max(0, start - chunk_start) : end - chunk_start])
            if chunk_start <= start:
                break
            chunk_end = chunk_start
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts[::-1])

    def push(self, samples: npt.ArrayLike) -> Float32Array:
        """Add audio (float32 mono, any length); returns the windows it completes,
        shape [k, window], oldest first, for the VAD to score. Their probabilities go
        to :meth:`step` in the same order (windows of several pushes may be stepped
        together or one by one)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return np.zeros((0, self._window), dtype=np.float32)
        # One copy we own: the held partial window and the new audio, back to back.
        held = self._pending.size
        buf = np.concatenate((self._pending, x)) if held else x.copy()
        self._chunks.append(buf[held:])
        self._fed += x.size
        n = buf.size // self._window
        self._pending = buf[n * self._window :]
        self._unscored += n
        return buf[: n * self._window].reshape(n, self._window)

    def tail_window(self) -> Float32Array:
        """End of stream: the last partial window, zero padded, shape [0 or 1, window]
        (score and :meth:`step` it, then :meth:`finish`)."""
        if not self._pending.size:
            return np.zeros((0, self._window), dtype=np.float32)
        window = np.zeros((1, self._window), dtype=np.float32)
        window[0, : self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        self._unscored += 1
        return window

    def step(self, probabilities: Sequence[float] | Float32Array) -> list[TurnEvent]:
        """Speech probabilities of the oldest unscored windows, in order: the events
        they complete. Raises ValueError for more probabilities than pushed windows."""
        if len(probabilities) > self._unscored:
            raise ValueError(
                f"{len(probabilities)} probabilities for {self._unscored} unscored windows"
            )
        events: list[TurnEvent] = []
        for prob in probabilities:
            self._unscored -= 1
            events.extend(self._step(float(prob)))
        self._trim()
        return events

    def finish(self) -> list[TurnEvent]:
        """End of stream, after the tail window was stepped: close an open turn, reset."""
        events: list[TurnEvent] = []
        if self._triggered:
            ended = self._close(self._temp_end or self._fed, forced=False)
            if ended is not None:
                events.append(ended)
        self.reset()
        return events

    def end_turn(self, paused: TurnPaused) -> TurnEnded | None:
        """End the open turn at ``paused`` (the end-of-turn model said it is complete):
        its TurnEnded, or None when that pause is over (speech resumed, or the turn
        already ended)."""
        if not (self._confirmed and self._paused and self._temp_end == paused.end_sample):
            return None
        if self._start != paused.start_sample:
            return None
        return self._close(self._temp_end, forced=False)

    def feed(self, samples: npt.ArrayLike) -> list[TurnEvent]:
        """:meth:`push` and :meth:`step`, scoring each window with the detector's own
        VAD one at a time (a server scores many streams' windows together instead:
        server/vad_scheduler.py)."""
        return self.step([self._score(w) for w in self.push(samples)])

    def flush(self) -> list[TurnEvent]:
        """End of stream: score the last partial window, close an open turn, reset."""
        events = self.step([self._score(w) for w in self.tail_window()])
        return events + self.finish()

    def _score(self, window: Float32Array) -> float:
        return self._vad.probability(self._stream, window)

    # ------------------------------------------------------------------ internals

    def _step(self, prob: float) -> list[TurnEvent]:
        """One window of silero's state machine; the window starts at self._pos."""
        cfg, cur = self.config, self._pos
        window_end = min(cur + self._window, self._fed)
        self._pos += self._window
        events: list[TurnEvent] = []
        if prob >= cfg.threshold:
            if self._paused:
                events.append(SpeechResumed(cur, min(self._pos, self._fed)))
            self._temp_end = self._paused = 0
            if not self._triggered:
                self._triggered, self._confirmed, self._start = True, False, cur
        elif self._triggered and prob < cfg.neg_threshold:
            if not self._temp_end:
                self._temp_end = cur
            if cur - self._temp_end >= self._min_silence:
                ended = self._close(self._temp_end, forced=False)
                return [ended] if ended is not None else []
            if self._confirmed and self._checks:
                heard = window_end - self._temp_end  # silence heard so far
                if heard >= self._check_after + self._paused * self._recheck:
                    events.append(self._pause())
        if not self._triggered:
            return events
        if not self._confirmed and not self._temp_end:
            # The region's end is at least window_end now, so it will be kept.
            if window_end - self._start > self._min_speech:
                self._confirmed = True
                events.append(
                    SpeechStarted(
                        self._start, max(0, self._start - self._pre_roll), min(self._pos, self._fed)
                    )
                )
        if self._confirmed and window_end + self._window - self._start > self._max_turn:
            ended = self._close(self._temp_end or window_end, forced=True)
            if ended is not None:
                events.append(ended)
        return events

    def _pause(self) -> TurnPaused:
        self._paused += 1
        return TurnPaused(
            start_sample=self._start,
            end_sample=self._temp_end,
            audio_start_sample=max(0, self._start - self._pre_roll),
            decided_sample=min(self._pos, self._fed),
            check=self._paused - 1,
        )

    def _close(self, end: int, *, forced: bool) -> TurnEnded | None:
        """Leave the speech state; the turn is returned if it was long enough."""
        kept, start = self._confirmed, self._start
        self._triggered = self._confirmed = False
        self._temp_end = self._paused = 0
        if not kept:
            return None
        audio_start = max(0, start - self._pre_roll)
        audio_end = min(self._fed, end + self._post_roll)
        return TurnEnded(
            start_sample=start,
            end_sample=end,
            audio=self._slice(audio_start, audio_end),
            audio_start_sample=audio_start,
            decided_sample=min(self._pos, self._fed),
            forced=forced,
        )

    def _slice(self, start: int, end: int) -> Float32Array:
        audio = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        begin = max(0, start - self._chunks_start)
        return audio[begin : end - self._chunks_start].copy()

    def _trim(self) -> None:
        """While no turn is open keep only the pre-roll before the next window (and
        ``history_samples`` of scored audio)."""
        keep_from = (self._start if self._triggered else self._pos) - self._pre_roll
        keep_from = min(keep_from, self._pos - self._history)
        while self._chunks and self._chunks_start + self._chunks[0].size <= keep_from:
            self._chunks_start += self._chunks.popleft().size
