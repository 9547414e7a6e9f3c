"""PCM conversion, downmixing, the streaming resampler and WAV helpers."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from parley.audio import (
    AudioConverter,
    AudioFormatError,
    Resampler,
    downmix,
    float_to_pcm16,
    float_to_pcm16_bytes,
    pcm16_to_float,
    read_audio,
    write_wav,
)

RATE_PAIRS = [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000), (16000, 8000)]


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def resample_all(src: int, dst: int, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
    r = Resampler(src, dst)
    step = chunk or len(x)
    parts = [r.process(x[i : i + step]) for i in range(0, len(x), step)]
    return np.concatenate([*parts, r.flush()])


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def test_pcm16_round_trip() -> None:
    ints = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    floats = pcm16_to_float(ints.astype("<i2").tobytes())
    assert floats.dtype == np.float32
    assert floats[0] == -1.0 and floats[2] == 0.0
    np.testing.assert_array_equal(float_to_pcm16(floats), ints)
    np.testing.assert_array_equal(pcm16_to_float(ints), floats)


def test_float_to_pcm16_clips_and_rounds() -> None:
    out = float_to_pcm16(np.array([1.5, -1.5, 0.5, 1.0]))
    assert out.tolist() == [32767, -32768, 16384, 32767]
    assert float_to_pcm16_bytes([0.0, 1.0]) == b"\x00\x00\xff\x7f"


def test_downmix_averages_channels() -> None:
    interleaved = np.array([1.0, 0.0, 0.5, 0.5, -1.0, 1.0], dtype=np.float32)
    np.testing.assert_allclose(downmix(interleaved, 2), [0.5, 0.5, 0.0])
    assert downmix(interleaved, 1) is interleaved


@pytest.mark.parametrize(("src", "dst"), [*RATE_PAIRS, (44101, 16000)])
def test_resampled_sine_keeps_frequency_and_amplitude(src: int, dst: int) -> None:
    y = resample_all(src, dst, tone(1000, src))
    assert len(y) == dst  # one second in, one second out (44101 Hz: rounded phases)
    assert dominant_frequency(y, dst) == pytest.approx(1000, abs=2)
    # Same phase and amplitude as the ideal tone at the new rate (edges excluded).
    np.testing.assert_allclose(y[100:-100], tone(1000, dst)[100:-100], atol=1e-3)


@pytest.mark.parametrize(("src", "dst"), [*RATE_PAIRS, (44101, 16000)])
def test_chunked_equals_one_shot(src: int, dst: int) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.5, 0.5, src // 4).astype(np.float32)
    one_shot = resample_all(src, dst, x)
    for chunk in (1, 37, src // 50, 4000):
        np.testing.assert_allclose(resample_all(src, dst, x, chunk), one_shot, atol=1e-6)


@pytest.mark.parametrize(("src", "dst", "freq"), [(44100, 16000, 9600), (48000, 16000, 12000)])
def test_tone_above_new_nyquist_is_suppressed(src: int, dst: int, freq: float) -> None:
    # Plain decimation would fold these tones to 6.4 and 4 kHz at full strength.
    y = resample_all(src, dst, tone(freq, src, amp=0.5))
    rms = np.sqrt(np.mean(y[200:-200] ** 2))
    assert 20 * np.log10(rms / (0.5 / np.sqrt(2))) < -60


def test_same_rate_passes_through() -> None:
    x = tone(440, 16000)
    r = Resampler(16000, 16000)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.flush().size == 0


def test_converter_stereo_44k_to_16k_mono() -> None:
    left, right = tone(500, 44100, amp=0.6), tone(500, 44100, amp=0.2)
    pcm = float_to_pcm16(np.stack([left, right], axis=1).reshape(-1)).astype("<i2").tobytes()
    conv = AudioConverter(44100, channels=2)
    step = 882 * 4  # 20 ms of stereo PCM16
    parts = [conv.convert(pcm[i : i + step]) for i in range(0, len(pcm), step)]
    out = np.concatenate([*parts, conv.flush()])
    assert out.dtype == np.float32 and len(out) == 16000
    np.testing.assert_allclose(out[100:-100], tone(500, 16000, amp=0.4)[100:-100], atol=2e-3)


def test_converter_carries_partial_frames() -> None:
    x = tone(300, 16000, seconds=0.1)
    pcm = float_to_pcm16_bytes(np.repeat(x, 2))  # stereo, identical channels
    conv = AudioConverter(16000, channels=2)
    out = np.concatenate([conv.convert(pcm[i : i + 7]) for i in range(0, len(pcm), 7)])
    np.testing.assert_allclose(out, x, atol=1 / 32768)
    assert conv.convert_int16(b"").dtype == np.int16


@pytest.mark.parametrize(("rate", "channels"), [(0, 1), (1000, 1), (16000, 0), (16000, 9)])
def test_converter_rejects_unusable_formats(rate: int, channels: int) -> None:
    with pytest.raises(AudioFormatError, match="unsupported"):
        AudioConverter(rate, channels)


def test_write_and_read_wav(tmp_path) -> None:
    stereo = float_to_pcm16(np.stack([tone(440, 8000), tone(880, 8000)], axis=1))
    path = tmp_path / "sub" / "out.wav"
    write_wav(path, stereo.astype("<i2").tobytes(), 8000, channels=2)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
    data, rate = read_audio(path)
    assert rate == 8000 and data.dtype == np.int16 and data.shape == (8000, 2)
    np.testing.assert_array_equal(data, stereo)

    write_wav(tmp_path / "mono.wav", stereo[:, 0].astype("<i2").tobytes(), 8000)
    mono, _ = read_audio(tmp_path / "mono.wav")
    assert mono.shape == (8000,)
