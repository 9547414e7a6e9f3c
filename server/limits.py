"""Limits on what an edge may send, checked before anything uses a message.

Every field that reaches memory, disk or the database is bounded: the gRPC message
size (the server's ``max_receive_message_length``), audio chunk length, camera frame
size, rate and count per turn, spans per message and per turn, Hello strings (as long
as the database columns they land in) and numbers that must be finite. The settings
are ``[limits]`` in the config (:class:`parley.config.LimitsConfig`).

A message that breaks a limit is dropped and the edge gets an Error LIMIT_EXCEEDED
whose ``limit`` names the setting (or the column) and whose message says by how much;
the session goes on. Reports are rate limited per limit (:class:`Reporter`), so a
flood of bad messages cannot become a flood of errors.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan

from parley import db
from parley.config import LimitsConfig
from protos import edge_pb2

REPORT_EVERY_S = 5.0  # after the first report of a limit, at most one per this long
CAPABILITY_CHARS = 64
# AudioChunk.seq below this: the next seq (an acknowledgement) must fit a uint64 on the
# wire and the store's signed 64-bit column.
MAX_SEQ = (1 << 63) - 1
FRAME_BURST_S = 2.0  # the frame rate limit lets this many seconds' worth through at once


def column_chars(field: object) -> int:
    """The length of a CharField column (peewee's default is 255)."""
    return int(getattr(field, "max_length", None) or 255)


@dataclass(frozen=True)
class Violation:
    """``limit``: the setting (``limits.max_frame_bytes``) or column (``device.id``)."""

    limit: str
    message: str


def _too_long(value: str, chars: int, what: str, limit: str) -> Violation | None:
    if len(value) > chars:
        return Violation(limit, f"{what} is {len(value)} characters, the limit is {chars}")
    return None


def check_hello(hello: edge_pb2.Hello, limits: LimitsConfig) -> Violation | None:
    """The Hello's strings fit their columns; the token and capabilities are bounded."""
    checks = [
        _too_long(hello.device_id, column_chars(db.Device.id), "Hello.device_id", "device.id"),
        _too_long(
            hello.agent_version,
            column_chars(db.Device.agent_version),
            "Hello.agent_version",
            "device.agent_version",
        ),
        _too_long(
            hello.pipeline,
            column_chars(db.Conversation.pipeline),
            "Hello.pipeline",
            "conversation.pipeline",
        ),
        _too_long(
            hello.audio_epoch,
            column_chars(db.Device.audio_epoch),
            "Hello.audio_epoch",
            "device.audio_epoch",
        ),
        _too_long(hello.token, limits.max_token_chars, "Hello.token", "limits.max_token_chars"),
    ]
    if len(hello.capabilities) > limits.max_capabilities:
        checks.append(
            Violation(
                "limits.max_capabilities",
                f"Hello has {len(hello.capabilities)} capabilities, "
                f"the limit is {limits.max_capabilities}",
            )
        )
    checks += [
        _too_long(c, CAPABILITY_CHARS, "a Hello capability", "hello.capabilities")
        for c in hello.capabilities
    ]
    return next((c for c in checks if c is not None), None)


MAX_SECONDS = 1e12  # edge times are seconds on a monotonic clock: far below this


def _finite(value: float, what: str) -> Violation | None:
    if not math.isfinite(value):
        return Violation("finite", f"{what} must be a finite number, not {value}")
    if abs(value) >= MAX_SECONDS:
        return Violation("finite", f"{what} is {value:g} s, not a time (|t| < 1e12)")
    return None


class StreamGuard:
    """The limits of one stream's messages after the Hello (frame rate is per stream,
    spans per turn are counted per trace id)."""

    def __init__(self, limits: LimitsConfig, audio_format: edge_pb2.AudioFormat) -> None:
        self.limits = limits
        frame_bytes = 2 * max(1, audio_format.channels)
        per_ms = audio_format.sample_rate * frame_bytes / 1000
        self.max_chunk_bytes = int(per_ms * limits.max_audio_chunk_ms)
        self._frame_tokens = limits.max_frames_per_s * FRAME_BURST_S
        self._frame_time = time.monotonic()
        self._spans: dict[str, int] = {}

    def check(self, event: edge_pb2.EdgeEvent) -> Violation | None:
        kind = event.WhichOneof("event")
        if kind == "audio":
            return self._audio(event.audio)
        if kind == "frame":
            return self._frame(event.frame)
        if kind == "playback":
            playback = event.playback
            return _finite(playback.edge_time, "PlaybackEvent.edge_time") or _too_long(
                playback.turn_id, column_chars(db.Turn.id), "PlaybackEvent.turn_id", "turn.id"
            )
        if kind == "ping":
            return _finite(event.ping.edge_time, "Ping.edge_time")
        return None

    def _audio(self, chunk: edge_pb2.AudioChunk) -> Violation | None:
        if chunk.seq >= MAX_SEQ:
            return Violation("audio.seq", f"audio chunk seq {chunk.seq} is not below 2^63 - 1")
        if len(chunk.pcm) > self.max_chunk_bytes:
            return Violation(
                "limits.max_audio_chunk_ms",
                f"audio chunk {chunk.seq} holds {len(chunk.pcm)} bytes, more than "
                f"{self.limits.max_audio_chunk_ms} ms ({self.max_chunk_bytes} bytes)",
            )
        return _finite(chunk.capture_time, "AudioChunk.capture_time")

    def _frame(self, frame: edge_pb2.VideoFrame) -> Violation | None:
        limits = self.limits
        if len(frame.jpeg) > limits.max_frame_bytes:
            return Violation(
                "limits.max_frame_bytes",
                f"camera frame {frame.seq} is {len(frame.jpeg)} bytes, "
                f"the limit is {limits.max_frame_bytes}",
            )
        bad = _finite(frame.capture_time, "VideoFrame.capture_time")
        if bad is not None:
            return bad
        # A token bucket: max_frames_per_s, with a burst of FRAME_BURST_S seconds.
        now = time.monotonic()
        burst = limits.max_frames_per_s * FRAME_BURST_S
        elapsed = now - self._frame_time
        self._frame_tokens = min(burst, self._frame_tokens + elapsed * limits.max_frames_per_s)
        self._frame_time = now
        if self._frame_tokens < 1.0:
            return Violation(
                "limits.max_frames_per_s",
                f"camera frames arrive faster than {limits.max_frames_per_s:g} per second",
            )
        self._frame_tokens -= 1.0
        return None

    def admit_spans(self, spans: list[ReadableSpan]) -> tuple[list[ReadableSpan], Violation | None]:
        """The spans that fit (columns, and ``max_spans_per_turn`` per trace)."""
        kept: list[ReadableSpan] = []
        violation = None
        for span in spans:
            bad = span_violation(span)
            if bad is None:
                trace_id = f"{span.context.trace_id:032x}" if span.context else ""
                count = self._spans.get(trace_id, 0)
                if count >= self.limits.max_spans_per_turn:
                    bad = Violation(
                        "limits.max_spans_per_turn",
                        f"more than {self.limits.max_spans_per_turn} edge spans for one turn",
                    )
                else:
                    self._spans[trace_id] = count + 1
                    kept.append(span)
            violation = violation or bad
        while len(self._spans) > 64:  # only recent turns' counts matter
            del self._spans[next(iter(self._spans))]
        return kept, violation


def span_violation(span: ReadableSpan) -> Violation | None:
    """A foreign span whose strings would not fit the Span table's columns."""
    status = span.status.description or ""
    service = str(span.resource.attributes.get("service.name", ""))
    turn_id = str((span.attributes or {}).get("parley.turn.id", ""))
    if max(span.start_time or 0, span.end_time or 0) > MAX_SEQ:  # a signed 64-bit column
        return Violation("span.start_ns", "a span's time does not fit 64-bit nanoseconds")
    return (
        _too_long(span.name, column_chars(db.Span.name), "a span's name", "span.name")
        or _too_long(service, column_chars(db.Span.service), "a span's service", "span.service")
        or _too_long(status, column_chars(db.Span.status) - 7, "a span's status", "span.status")
        or _too_long(turn_id, column_chars(db.Span.turn_id), "a span's turn id", "span.turn_id")
    )


class Reporter:
    """Decides which violations are reported: the first of each limit, then at most
    one every ``every_s`` seconds (with the count of those not reported)."""

    def __init__(self, every_s: float = REPORT_EVERY_S) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self.violations = 0

    def note(self, violation: Violation) -> str | None:
        """The message to send for ``violation``, or None to stay quiet."""
        self.violations += 1
        now = time.monotonic()
        last = self._last.get(violation.limit)
        if last is not None and now - last < self.every_s:
            self._quiet[violation.limit] = self._quiet.get(violation.limit, 0) + 1
            return None
        self._last[violation.limit] = now
        quiet = self._quiet.pop(violation.limit, 0)
        more = f" ({quiet} more since the last report)" if quiet else ""
        return f"{violation.message}; dropped{more}"
