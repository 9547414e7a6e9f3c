"""From native device blocks to stream chunks: conversion, chunk sizes, capture times."""

from __future__ import annotations

import numpy as np
import pytest

from edge.capture import CaptureClock, ChunkMaker, Decimator
from tests.edge.conftest import sine


def test_clock_follows_the_earliest_arrivals_and_ignores_late_callbacks() -> None:
    clock = CaptureClock(rate=1000)
    assert clock.observe(0, 100, arrival=10.1) == pytest.approx(10.0)
    # A late callback (jitter) does not move the clock: the block was captured on time.
    assert clock.observe(100, 100, arrival=10.25) == pytest.approx(10.1)
    # An earlier arrival than expected proves the clock late: it moves back.
    assert clock.observe(200, 100, arrival=10.28) == pytest.approx(10.18)
    assert clock.time_of(300) == pytest.approx(10.28)


def test_clock_jumps_forward_after_lost_blocks() -> None:
    clock = CaptureClock(rate=1000, slack=0.1)
    clock.observe(0, 100, arrival=1.1)
    # Blocks were lost: this one arrives 0.5 s later than its index says.
    assert clock.observe(100, 100, arrival=1.7) == pytest.approx(1.6)


def test_clock_subtracts_the_input_latency() -> None:
    clock = CaptureClock(rate=1000, latency=0.03)
    assert clock.observe(0, 20, arrival=5.0) == pytest.approx(4.95)


@pytest.mark.parametrize("native, channels", [(48000, 1), (44100, 2), (16000, 1), (32000, 2)])
def test_native_blocks_become_20ms_chunks_of_16k_mono(native: int, channels: int) -> None:
    maker = ChunkMaker(native, channels, rate=16000, chunk_ms=20)
    tone = sine(440, 2.0, native)
    frames = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    block = native // 100  # 10 ms device blocks, not the chunk size
    chunks = []
    for i, offset in enumerate(range(0, len(frames), block)):
        pcm = frames[offset : offset + block].astype("<i2").tobytes()
        chunks += maker.feed(pcm, arrival=100.0 + (i + 1) * 0.01)
    assert all(len(c.pcm) == 640 for c in chunks)
    assert len(chunks) >= 98  # 2 s, less the filter's look-ahead
    # Capture times: 20 ms apart, starting at the first block's start (100.0 s),
    # shifted by the filter's group delay only (under a millisecond).
    times = np.array([c.capture_time for c in chunks])
    assert np.allclose(np.diff(times), 0.02, atol=1e-9)
    assert times[0] == pytest.approx(100.0, abs=0.001)
    # The tone survives at its level (0.3 of full scale: RMS 0.212).
    audio = np.frombuffer(b"".join(c.pcm for c in chunks[5:-5]), np.int16) / 32768
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * 16000 / audio.size == pytest.approx(440, abs=2)


def test_decimator_passes_speech_band_and_stops_what_would_alias() -> None:
    decimator = Decimator(3)

    def level(freq: float) -> float:
        out = Decimator(3).process(sine(freq, 0.5, 48000).astype(np.float32))
        return float(np.sqrt(np.mean(out[200:-50] ** 2)))

    full = 0.3 * 32768 / np.sqrt(2)
    assert level(1000) == pytest.approx(full, rel=0.01)
    assert level(6000) == pytest.approx(full, rel=0.02)
    assert level(12000) < full * 1e-3  # would fold onto 4 kHz: -60 dB or better
    assert decimator.delay == pytest.approx(47.5)


def test_decimator_in_blocks_equals_all_at_once() -> None:
    x = np.random.default_rng(1).normal(0, 1000, 4800).astype(np.float32)
    whole = Decimator(3).process(x)
    parts = Decimator(3)
    pieces = [parts.process(x[i : i + 457]) for i in range(0, x.size, 457)]
    assert np.allclose(np.concatenate(pieces), whole[: sum(p.size for p in pieces)], atol=1e-2)
