"""Positions in the converted audio stream, mapped back to the edge's capture clock."""

from __future__ import annotations

import collections

RATE = 16000  # the server's audio rate after conversion (what the VAD runs at)


class EdgeClock:
    """Maps positions in the converted 16 kHz stream to edge capture times."""

    def __init__(self, keep: int = 4096) -> None:
        self._chunks: collections.deque[tuple[int, float]] = collections.deque(maxlen=keep)

    def add(self, first_sample: int, capture_time: float) -> None:
        self._chunks.append((first_sample, capture_time))

    def at(self, sample: int) -> float | None:
        best = None
        for first, captured in reversed(self._chunks):
            best = (first, captured)
            if first <= sample:
                break
        if best is None:
            return None
        return best[1] + (sample - best[0]) / RATE
