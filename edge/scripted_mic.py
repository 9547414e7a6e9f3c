"""A microphone a program talks into: silence at real-time pace, with whatever
:meth:`ScriptedSource.say` queued mixed in, stamped on the edge clock (tests and
``parley bench chaos``: speech at known moments, no sound card)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from edge.capture import Chunk


class ScriptedSource:
    """20 ms chunks of 16 kHz mono PCM16 at real-time pace."""

    rate = 16000
    overflows = 0

    def __init__(self) -> None:
        self._queued = np.zeros(0, np.int16)
        self.captured: list[Chunk] = []

    def say(self, samples: np.ndarray) -> float:
        """Queue speech; returns how long it lasts in seconds."""
        self._queued = np.concatenate([self._queued, samples.astype(np.int16)])
        return samples.size / self.rate

    @property
    def speaking(self) -> bool:
        """Queued speech has not all been captured yet."""
        return bool(self._queued.size)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def stop(self) -> None:
        pass

    def describe(self) -> str:
        return "scripted"

    async def chunks(self) -> AsyncIterator[Chunk]:
        step = self.rate // 50
        start, n = time.monotonic(), 0
        while True:
            due = start + (n + 1) * step / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pcm = self._queued[:step]
            self._queued = self._queued[step:]
            if pcm.size < step:
                pcm = np.concatenate([pcm, np.zeros(step - pcm.size, np.int16)])
            chunk = Chunk(pcm.tobytes(), start + n * step / self.rate)
            self.captured.append(chunk)
            n += 1
            yield chunk
