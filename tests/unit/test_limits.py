"""The limits on what an edge may send: each names itself when broken."""

from __future__ import annotations

import math

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from parley.config import ConfigError, LimitsConfig, load_config
from protos import edge_pb2
from server.limits import Reporter, StreamGuard, Violation, check_hello

FORMAT = edge_pb2.AudioFormat(sample_rate=16000, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE)


def hello(**fields: object) -> edge_pb2.Hello:
    return edge_pb2.Hello(**{"device_id": "pi", "audio_format": FORMAT, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"device_id": "d" * 129}, "device.id"),
        ({"agent_version": "v" * 256}, "device.agent_version"),
        ({"pipeline": "p" * 256}, "conversation.pipeline"),
        ({"audio_epoch": "e" * 65}, "device.audio_epoch"),
        ({"token": "t" * 4097}, "limits.max_token_chars"),
        ({"capabilities": ["c"] * 17}, "limits.max_capabilities"),
        ({"capabilities": ["c" * 65]}, "hello.capabilities"),
    ],
)
def test_hello_fields_longer_than_their_columns_are_refused(fields: dict, limit: str) -> None:
    violation = check_hello(hello(**fields), LimitsConfig())
    assert violation is not None and violation.limit == limit
    assert "the limit is" in violation.message


def test_a_good_hello_passes() -> None:
    assert check_hello(hello(capabilities=["speaker", "camera"]), LimitsConfig()) is None


def chunk(pcm: bytes, capture_time: float = 0.0) -> edge_pb2.EdgeEvent:
    return edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=1, pcm=pcm, capture_time=capture_time))


def test_audio_chunks_are_bounded_in_length_at_the_hello_format() -> None:
    guard = StreamGuard(LimitsConfig(max_audio_chunk_ms=100), FORMAT)
    assert guard.check(chunk(bytes(3200))) is None  # 100 ms at 16 kHz mono
    violation = guard.check(chunk(bytes(3202)))
    assert violation is not None and violation.limit == "limits.max_audio_chunk_ms"
    stereo = edge_pb2.AudioFormat(sample_rate=48000, channels=2)
    assert StreamGuard(LimitsConfig(max_audio_chunk_ms=100), stereo).max_chunk_bytes == 19200


def test_a_seq_whose_successor_would_not_fit_is_refused() -> None:
    guard = StreamGuard(LimitsConfig(), FORMAT)
    for seq in ((1 << 63) - 1, (1 << 64) - 1):
        event = edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=seq, pcm=b"\0\0"))
        violation = guard.check(event)
        assert violation is not None and violation.limit == "audio.seq"
    assert guard.check(edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=(1 << 63) - 2))) is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_times_must_be_finite(value: float) -> None:
    guard = StreamGuard(LimitsConfig(), FORMAT)
    events = [
        chunk(b"\0\0", capture_time=value),
        edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=value)),
        edge_pb2.EdgeEvent(playback=edge_pb2.PlaybackEvent(turn_id="t", edge_time=value)),
        edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=b"j", capture_time=value)),
    ]
    for event in events:
        violation = guard.check(event)
        assert violation is not None and violation.limit == "finite"
    assert guard.check(chunk(b"\0\0", capture_time=1e300)) is not None  # not a time either


def test_frames_are_bounded_in_size_and_rate() -> None:
    guard = StreamGuard(LimitsConfig(max_frame_bytes=100, max_frames_per_s=2.0), FORMAT)
    big = edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=bytes(101)))
    assert guard.check(big) == Violation(
        "limits.max_frame_bytes", "camera frame 0 is 101 bytes, the limit is 100"
    )
    frame = edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=bytes(10)))
    results = [guard.check(frame) for _ in range(6)]
    assert results[:4] == [None] * 4  # a burst of 2 s at 2 per second
    assert all(r is not None and r.limit == "limits.max_frames_per_s" for r in results[4:])


def span(name: str = "edge.playback", trace_id: int = 1, end: int = 0) -> ReadableSpan:
    context = SpanContext(trace_id=trace_id, span_id=1, is_remote=True)
    resource = Resource({"service.name": "edge"})
    return ReadableSpan(name=name, context=context, resource=resource, end_time=end)


def test_spans_are_bounded_per_turn_and_must_fit_their_columns() -> None:
    guard = StreamGuard(LimitsConfig(max_spans_per_turn=3), FORMAT)
    kept, violation = guard.admit_spans([span(), span("x" * 300), span(), span()])
    assert len(kept) == 3 and violation is not None and violation.limit == "span.name"
    kept, violation = guard.admit_spans([span(), span(trace_id=2)])
    assert [s.context.trace_id for s in kept] == [2]
    assert violation is not None and violation.limit == "limits.max_spans_per_turn"
    kept, violation = guard.admit_spans([span(trace_id=3, end=(1 << 64) - 1)])
    assert not kept and violation is not None and violation.limit == "span.start_ns"


def test_reports_are_rate_limited_per_limit() -> None:
    reporter = Reporter(every_s=60.0)
    frame = Violation("limits.max_frame_bytes", "too big")
    assert reporter.note(frame) == "too big; dropped"
    assert reporter.note(frame) is None
    assert reporter.note(Violation("finite", "NaN")) == "NaN; dropped"
    reporter.every_s = 0.0
    assert reporter.note(frame) == "too big; dropped (1 more since the last report)"
    assert reporter.violations == 4


def test_limits_are_settings_that_must_be_positive(tmp_path) -> None:
    path = tmp_path / "parley.toml"
    path.write_text("[limits]\nmax_frame_bytes = 1000\n")
    config = load_config(path, env={"PARLEY_LIMITS_MAX_FRAMES_PER_S": "0.5"})
    assert config.limits.max_frame_bytes == 1000 and config.limits.max_frames_per_s == 0.5
    with pytest.raises(ConfigError, match=r"max_spans_per_turn = 0: must be more than 0"):
        LimitsConfig(max_spans_per_turn=0)
