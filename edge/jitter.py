"""The speaker's jitter buffer: answer audio queued per turn, pulled by the audio
callback.

The event loop pushes samples as AudioOut chunks arrive; the PortAudio callback reads
exactly one block at a time. A turn starts playing once ``prebuffer`` frames are queued
(or its last chunk is in), turns play back to back without gaps, and an underrun in the
middle of a turn plays silence until more arrives. ``read`` reports where in the block
each turn started or finished, so playback times are exact to the sample.
A short lock guards the queue; nothing else in ``read`` waits.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Mark = tuple[Literal["started", "finished"], str, int]  # kind, turn id, offset in block


@dataclass
class _Segment:
    turn_id: str
    blocks: collections.deque[npt.NDArray[np.int16]] = field(default_factory=collections.deque)
    queued: int = 0
    ended: bool = False
    started: bool = False


class JitterBuffer:
    def __init__(self, prebuffer: int) -> None:
        self.prebuffer = prebuffer
        self._segments: collections.deque[_Segment] = collections.deque()
        self._stopped: collections.deque[str] = collections.deque(maxlen=32)
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """Audio queued or playing (a turn whose end has not been played yet)."""
        return bool(self._segments)

    def _segment(self, turn_id: str) -> _Segment | None:
        if turn_id in self._stopped:
            return None  # chunks still in flight after a stop are dropped
        if not self._segments or self._segments[-1].turn_id != turn_id:
            self._segments.append(_Segment(turn_id))
        return self._segments[-1]

    def push(self, turn_id: str, samples: npt.NDArray[np.int16]) -> None:
        if not samples.size:
            return
        with self._lock:
            segment = self._segment(turn_id)
            if segment is not None:
                segment.blocks.append(samples)
                segment.queued += samples.size

    def end(self, turn_id: str) -> None:
        """The turn's last chunk is in: play it out even if below the prebuffer."""
        with self._lock:
            segment = self._segment(turn_id)
            if segment is not None:
                segment.ended = True

    def clear(self, turn_id: str = "") -> list[str]:
        """Drop a turn's audio (every turn's for ""); later chunks of it are ignored.
        Returns the turns dropped before they finished playing."""
        with self._lock:
            dropped = [s for s in self._segments if not turn_id or s.turn_id == turn_id]
            for segment in dropped:
                self._segments.remove(segment)
            if turn_id:
                self._stopped.append(turn_id)
        return [s.turn_id for s in dropped]

    def resume(self, turn_id: str) -> None:
        """Take a stopped turn's chunks again (the server resumed it: a false
        interruption); they play as a new segment, with their own started mark."""
        with self._lock:
            while turn_id in self._stopped:
                self._stopped.remove(turn_id)

    def read(self, out: npt.NDArray[np.int16]) -> tuple[int, list[Mark]]:
        """Fill ``out`` (zeros where there is nothing to play). Returns how many
        frames hold audio and the turns that started or finished in this block."""
        n, pos = out.size, 0
        marks: list[Mark] = []
        with self._lock:
            while pos < n and self._segments:
                segment = self._segments[0]
                if not segment.started:
                    if not segment.ended and segment.queued < self.prebuffer:
                        break
                    segment.started = True
                    marks.append(("started", segment.turn_id, pos))
                while pos < n and segment.blocks:
                    block = segment.blocks[0]
                    take = min(block.size, n - pos)
                    out[pos : pos + take] = block[:take]
                    if take == block.size:
                        segment.blocks.popleft()
                    else:
                        segment.blocks[0] = block[take:]
                    segment.queued -= take
                    pos += take
                if segment.blocks or not segment.ended:
                    break  # block full, or an underrun inside the turn
                marks.append(("finished", segment.turn_id, pos))
                self._segments.popleft()
        written = pos
        out[pos:] = 0
        return written, marks
