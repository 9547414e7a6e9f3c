"""Positions in the converted audio stream, mapped back to the edge's capture clock."""

from __future__ import annotations

import collections
import time

RATE = 16000  # the server's audio rate after conversion (what the VAD runs at)


class EdgeClock:
    """Maps positions in the converted 16 kHz stream to edge capture times."""

    def __init__(self, keep: int = 4096) -> None:
        self._chunks: collections.deque[tuple[int, float]] = collections.deque(maxlen=keep)
        self._latest: tuple[float, float] | None = None  # (capture time, server monotonic)

    def add(self, first_sample: int, capture_time: float) -> None:
        self._chunks.append((first_sample, capture_time))
        self._latest = (capture_time, time.monotonic())

    def now(self) -> float | None:
        """An estimate of the edge clock's "now": the latest chunk's capture time plus
        the time since it arrived (late by the uplink's delay). None before any audio."""
        if self._latest is None:
            return None
        captured, arrived = self._latest
        return captured + (time.monotonic() - arrived)

    def at(self, sample: int) -> float | None:
        best = None
        for first, captured in reversed(self._chunks):
            best = (first, captured)
            if first <= sample:
                break
        if best is None:
            return None
        return best[1] + (sample - best[0]) / RATE
