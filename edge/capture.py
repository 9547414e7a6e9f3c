"""From a device's native blocks to the stream's chunks, with capture times.

A sound card delivers blocks in its own rate and channel count; the stream wants small
fixed chunks (20 ms of 16 kHz mono PCM16 by default), each stamped with the edge
monotonic time of its first sample. :class:`CaptureClock` turns "this block reached
us at time t" into a smooth sample clock, and :class:`ChunkMaker` converts and cuts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from parley.audio import Resampler


@dataclass(frozen=True)
class Chunk:
    """One chunk of stream audio: PCM16 mono bytes and the capture time (edge clock)
    of its first sample."""

    pcm: bytes
    capture_time: float


class CaptureClock:
    """Edge time of native sample ``i``: ``anchor_time + (i - anchor_index) / rate``.

    Each block reaches the program after its last sample was captured, so
    ``arrival - frames / rate - latency`` is an upper bound on its first sample's capture
    time; callback jitter only makes arrivals later. The clock follows the earliest
    bound seen (it moves back whenever a block proves it early) and jumps forward only
    when it falls more than ``slack`` behind (lost blocks, a suspended device).
    """

    def __init__(self, rate: int, latency: float = 0.0, slack: float = 0.1) -> None:
        self.rate, self.latency, self.slack = rate, latency, slack
        self._anchor: tuple[int, float] | None = None

    def observe(self, first_index: int, frames: int, arrival: float) -> float:
        """Record a block's arrival; return its first sample's capture time."""
        bound = arrival - frames / self.rate - self.latency
        if self._anchor is None:
            self._anchor = (first_index, bound)
            return bound
        expected = self.time_of(first_index)
        if expected > bound or bound - expected > self.slack:
            self._anchor = (first_index, bound)
            return bound
        return expected

    def time_of(self, index: float) -> float:
        if self._anchor is None:
            raise RuntimeError("no block observed yet")
        first, at = self._anchor
        return at + (index - first) / self.rate


class Decimator:
    """Integer-ratio downsampling (48 kHz -> 16 kHz, ...): a Kaiser-windowed sinc
    low-pass (cut-off ``rolloff`` x the new Nyquist, about -90 dB above it), one
    ``np.convolve`` per block, so a Pi spends microseconds per chunk. Output ``n`` is
    input position ``n * factor - delay`` (the filter's constant group delay)."""

    def __init__(self, factor: int, *, taps_per_phase: int = 32, rolloff: float = 0.9) -> None:
        self.factor = factor
        length = taps_per_phase * factor
        n = np.arange(length) - (length - 1) / 2
        h = np.sinc(rolloff / factor * n) * np.kaiser(length, 8.0)
        self._h = (h / h.sum()).astype(np.float32)  # symmetric: no need to reverse
        self.delay = (length - 1) / 2
        self._buf = np.zeros(length - 1, np.float32)  # history; windows start at _buf[0]

    def process(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        buf = np.concatenate((self._buf, x))
        if buf.size < self._h.size:
            self._buf = buf
            return np.zeros(0, np.float32)
        out = np.convolve(buf, self._h, "valid")[:: self.factor]
        self._buf = buf[out.size * self.factor :]
        return out


class ChunkMaker:
    """Native interleaved PCM16 blocks in, stream chunks (``chunk_ms`` of mono PCM16 at
    ``rate``) out, each stamped with its first sample's capture time. Integer rate
    ratios go through a :class:`Decimator`, others through :class:`parley.audio.Resampler`
    (no group delay); equal rates are only cut."""

    def __init__(
        self,
        native_rate: int,
        channels: int,
        *,
        rate: int = 16000,
        chunk_ms: int = 20,
        latency: float = 0.0,
    ) -> None:
        self.native_rate, self.channels, self.rate = native_rate, channels, rate
        self.step = rate * chunk_ms // 1000
        self.clock = CaptureClock(native_rate, latency)
        self._filter: Decimator | Resampler | None = None
        self._delay = 0.0  # native samples between an output's position and its index
        if native_rate != rate:
            if native_rate % rate == 0:
                self._filter = Decimator(native_rate // rate)
                self._delay = self._filter.delay
            else:
                self._filter = Resampler(native_rate, rate)
        self._native_in = 0  # native frames seen
        self._pending = np.zeros(0, np.int16)  # converted samples not yet chunked
        self._pending_start = 0  # output index of _pending[0]

    def _convert(self, pcm: bytes) -> npt.NDArray[np.int16]:
        frames = np.frombuffer(pcm, "<i2")
        if self.channels > 1:
            frames = frames[: frames.size - frames.size % self.channels]
            mono = frames.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        elif self._filter is None:
            return frames.astype(np.int16)
        else:
            mono = frames.astype(np.float32)
        if self._filter is not None:
            mono = self._filter.process(mono)
        return np.clip(np.rint(mono), -32768, 32767).astype(np.int16)

    def feed(self, pcm: bytes, arrival: float) -> list[Chunk]:
        """One native block (as it arrived) -> the whole chunks now complete."""
        frames = len(pcm) // (2 * self.channels)
        self.clock.observe(self._native_in, frames, arrival)
        self._native_in += frames
        out = self._convert(pcm)
        self._pending = np.concatenate((self._pending, out)) if self._pending.size else out
        chunks = []
        whole = self._pending.size - self._pending.size % self.step
        ratio = self.native_rate / self.rate
        for offset in range(0, whole, self.step):
            first = self._pending_start + offset
            at = self.clock.time_of(first * ratio - self._delay)
            chunks.append(Chunk(self._pending[offset : offset + self.step].tobytes(), at))
        self._pending = self._pending[whole:]
        self._pending_start += whole
        return chunks
