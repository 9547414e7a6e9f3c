"""PCM helpers shared by edge and server: conversion, downmixing, resampling, WAV files.

Audio inside Parley is 16-bit little-endian PCM on the wire and float32 in [-1, 1)
in memory. The server turns every incoming chunk into 16 kHz mono with
:class:`AudioConverter`; everything here is numpy only and vectorised per chunk.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from parley.errors import ParleyError

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

VAD_RATE = 16000  # what the server's VAD and the STT workers consume
MIN_RATE, MAX_RATE = 4000, 384000
MAX_CHANNELS = 8


_PCM16_SCALE = np.float32(1.0 / 32768.0)


def pcm16_to_float(data: bytes | Int16Array) -> Float32Array:
    """Little-endian PCM16 (bytes or int16 array) to float32 in [-1, 1)."""
    pcm = np.frombuffer(data, dtype="<i2") if isinstance(data, bytes | bytearray) else data
    return pcm * _PCM16_SCALE  # one ufunc call: int16 in, float32 out


def float_to_pcm16(samples: npt.ArrayLike) -> Int16Array:
    """Float samples in [-1, 1] to int16, rounded and clipped."""
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def float_to_pcm16_bytes(samples: npt.ArrayLike) -> bytes:
    return float_to_pcm16(samples).astype("<i2").tobytes()


def downmix(interleaved: Float32Array, channels: int) -> Float32Array:
    """Average interleaved multi-channel samples (frames * channels) into mono."""
    if channels == 1:
        return interleaved
    frames = interleaved.reshape(-1, channels)
    return frames.mean(axis=1, dtype=np.float32)


def _kaiser(x: npt.NDArray[np.float64], beta: float) -> npt.NDArray[np.float64]:
    """Kaiser window evaluated at x in [-1, 1] (zero outside)."""
    inside = np.clip(1.0 - x * x, 0.0, None)
    return np.where(np.abs(x) <= 1.0, np.i0(beta * np.sqrt(inside)) / np.i0(beta), 0.0)


class Resampler:
    """Streaming rational resampler: a Kaiser-windowed sinc low-pass, polyphase.

    Output sample ``n`` is the band-limited input evaluated at input time
    ``n * src_rate / dst_rate``, so positions stay exact (no group delay); the price
    is a look-ahead of ``half_width`` input samples (about 1-3 ms), which :meth:`flush`
    releases at the end of a stream. The cut-off is ``rolloff`` times the lower
    Nyquist frequency, so downsampling removes what would alias. Feeding a signal in
    chunks gives the same output as feeding it at once.
    """

    def __init__(
        self,
        src_rate: int,
        dst_rate: int,
        *,
        zero_crossings: int = 24,
        rolloff: float = 0.92,
        beta: float = 8.6,
    ) -> None:
        if not (src_rate > 0 and dst_rate > 0):
            raise ValueError(f"sample rates must be positive, not {src_rate} -> {dst_rate}")
        self.src_rate, self.dst_rate = src_rate, dst_rate
        g = math.gcd(src_rate, dst_rate)
        self._up, self._down = dst_rate // g, src_rate // g  # output step = down/up inputs
        bandwidth = rolloff * min(1.0, dst_rate / src_rate)  # 2 * cut-off, cycles/input sample
        self.half_width = math.ceil(zero_crossings / bandwidth)
        self._bandwidth, self._beta = bandwidth, beta
        # Output n reads inputs centre-half_width+1 .. centre+half_width.
        self._offsets = np.arange(1 - self.half_width, self.half_width + 1, dtype=np.int64)
        # One row of taps per output phase (k / phases of an input sample, k = 0..phases).
        # Odd rate pairs have too many phases: they are rounded to 1/1024 of a sample
        # (error below -60 dB up to the cut-off).
        self._phases = min(self._up, 1024)
        self._table = self._taps(np.arange(self._phases + 1))
        self._reset()

    def _reset(self) -> None:
        self._buf = np.zeros(self.half_width, dtype=np.float32)  # zeros before the start
        self._buf_start = -self.half_width  # absolute input index of _buf[0]
        self._n = 0  # next output index
        self._fed = 0  # input samples seen

    def _taps(self, phases: npt.NDArray[np.int64]) -> Float32Array:
        # Tap k weighs input (centre + offset_k); its distance from the output time is
        # phase/phases - offset_k. Each row is normalised to unit DC gain.
        dist = phases[:, None] / self._phases - self._offsets[None, :]
        taps = np.sinc(self._bandwidth * dist) * _kaiser(dist / self.half_width, self._beta)
        taps /= taps.sum(axis=1, keepdims=True)
        return taps.astype(np.float32)

    def process(self, samples: npt.ArrayLike) -> Float32Array:
        """Resample the next chunk; returns every output sample computable so far."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._up == self._down:
            return x
        self._fed += x.size
        self._buf = np.concatenate((self._buf, x))
        return self._run(self._buf_start + self._buf.size - self.half_width)

    def flush(self) -> Float32Array:
        """Release the samples held back for look-ahead (zero padded) and reset."""
        if self._up == self._down:
            return np.zeros(0, dtype=np.float32)
        self._buf = np.concatenate((self._buf, np.zeros(self.half_width, np.float32)))
        out = self._run(self._fed)  # every output whose centre lies inside the input
        self._reset()
        return out

    def _run(self, limit: int) -> Float32Array:
        """Compute outputs whose centre input index is below ``limit``."""
        n_end = -(-limit * self._up // self._down)  # first n with n*down/up >= limit
        if n_end <= self._n:
            return np.zeros(0, dtype=np.float32)
        n = np.arange(self._n, n_end, dtype=np.int64)
        centre, phase = np.divmod(n * self._down, self._up)
        if self._phases != self._up:
            phase = (phase * self._phases + self._up // 2) // self._up
        taps = self._table[phase]
        taps_n, buf = 2 * self.half_width, self._buf  # as_strided: sliding_window_view is slow
        windows = np.lib.stride_tricks.as_strided(
            buf, (buf.size - taps_n + 1, taps_n), (buf.strides[0],) * 2, writeable=False
        )
        rows = windows[centre - self._buf_start - self.half_width + 1]
        out = np.einsum("ij,ij->i", rows, taps)
        self._n = n_end
        keep_from = n_end * self._down // self._up - self.half_width + 1
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf, self._buf_start = self._buf[drop:].copy(), keep_from
        return out


class AudioConverter:
    """Turns PCM16 chunks of one format into 16 kHz mono float32, chunk by chunk.

    Partial frames (a chunk whose length is not a whole number of frames) are carried
    to the next chunk, and the resampler keeps its state, so a stream may be cut
    anywhere.
    """

    def __init__(self, sample_rate: int, channels: int = 1, target_rate: int = VAD_RATE) -> None:
        check_format(sample_rate, channels)
        self.sample_rate, self.channels, self.target_rate = sample_rate, channels, target_rate
        self._frame_bytes = 2 * channels
        self._carry = b""
        self._resampler = Resampler(sample_rate, target_rate)
        self._as_is = sample_rate == target_rate and channels == 1

    def convert(self, pcm: bytes) -> Float32Array:
        """Next chunk of PCM16 bytes in, float32 mono at ``target_rate`` out."""
        if self._as_is and not self._carry and not len(pcm) % 2:
            return pcm16_to_float(pcm)  # already mono at the target rate: the usual case
        if self._carry:
            pcm = self._carry + pcm
        whole = len(pcm) - len(pcm) % self._frame_bytes
        self._carry = pcm[whole:]
        mono = downmix(pcm16_to_float(pcm if whole == len(pcm) else pcm[:whole]), self.channels)
        return self._resampler.process(mono)

    @property
    def held_back(self) -> int:
        """Output samples owed for audio already given (the resampler's look-ahead, and
        a partial frame carried over counts as one)."""
        resampler = self._resampler
        lookahead = 0
        if resampler.src_rate != resampler.dst_rate:
            lookahead = -(-resampler.half_width * resampler.dst_rate // resampler.src_rate) + 1
        return lookahead + (1 if self._carry else 0)

    @property
    def carrying(self) -> bool:
        """Part of a frame is waiting for the next chunk."""
        return bool(self._carry)

    def convert_int16(self, pcm: bytes) -> Int16Array:
        return float_to_pcm16(self.convert(pcm))

    def flush(self) -> Float32Array:
        """End of stream: the resampler's held-back tail (a partial frame is dropped)."""
        self._carry = b""
        return self._resampler.flush()


def check_format(sample_rate: int, channels: int) -> None:
    """Raise :class:`AudioFormatError` for a format the converter cannot take."""
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(
            f"unsupported sample rate {sample_rate} Hz (expected {MIN_RATE}-{MAX_RATE})"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"unsupported channel count {channels} (expected 1-{MAX_CHANNELS})")


class AudioFormatError(ParleyError, ValueError):
    """An audio format (rate, channels, encoding) that Parley cannot convert."""


# --------------------------------------------------------------------------- files


def read_audio(path: str | Path) -> tuple[Int16Array, int]:
    """Read any file libsndfile knows (WAV, FLAC, OGG) as int16.

    Returns ``(samples, rate)``: shape ``(frames,)`` for mono, ``(frames, channels)``
    otherwise.
    """
    try:
        import soundfile
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ParleyError(
            "reading audio files needs soundfile: pip install 'parley[edge]'"
        ) from None
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=False)
    return np.ascontiguousarray(data), int(rate)


def write_wav(path: str | Path, pcm16: bytes, rate: int, channels: int = 1) -> None:
    """Write little-endian PCM16 bytes as a WAV file (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16)
