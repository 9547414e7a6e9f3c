"""Converse streams built from a fixed seed: valid messages, broken ones, and the
ways a stream can end.

Each session is a plan: a first message (usually a valid Hello, sometimes a broken
one), then messages drawn from :data:`MUTATIONS` (audio with good and bad sequence
numbers, non-finite times, oversized chunks and frames, bursts of frames, spans that
are garbage or too many, undecodable and truncated bytes, unknown enum values,
strings longer than their columns, a message above the gRPC size limit), then an
ending (half-close, cancel, dropped connection, deadline). The same seed gives the
same plan, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import math
import random
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from parley.chaos.client import CHUNK, RATE, RawStream, hello, speech_pcm
from parley.config import LimitsConfig
from protos import edge_pb2

ENDINGS = ("half-close", "cancel", "drop", "deadline")
Message = bytes | edge_pb2.EdgeEvent


@dataclass
class Plan:
    first: Message
    messages: list[Message] = field(default_factory=list)
    ending: str = "half-close"


class Fuzzer:
    def __init__(self, seed: int, limits: LimitsConfig | None = None) -> None:
        self.rng = random.Random(seed)
        self.limits = limits or LimitsConfig()
        self.speech = speech_pcm()
        self.seq = 0
        self.mutations: list[tuple[str, Callable[[], Message]]] = [
            ("audio", self.audio),
            ("audio", self.audio),
            ("audio", self.audio),
            ("speech", self.speech_chunk),
            ("speech", self.speech_chunk),
            ("bad seq", self.bad_seq),
            ("odd audio", self.odd_audio),
            ("huge audio", self.huge_audio),
            ("non-finite time", self.non_finite_time),
            ("frame", self.frame),
            ("huge frame", self.huge_frame),
            ("playback", self.playback),
            ("spans", self.spans),
            ("many spans", self.many_spans),
            ("garbage spans", self.garbage_spans),
            ("ping", self.ping),
            ("hello again", lambda: hello("again")),
            ("empty", lambda: edge_pb2.EdgeEvent()),
            ("random bytes", self.random_bytes),
            ("truncated", self.truncated),
            ("bit flip", self.bit_flip),
            ("unknown field", self.unknown_field),
        ]

    # ------------------------------------------------------------------ plans

    def plan(self, messages: int) -> Plan:
        rng = self.rng
        self.seq = rng.choice([0, 0, 0, rng.randrange(1, 1 << 20)])
        if rng.random() < 0.85:
            first: Message = hello(f"fuzz-{rng.randrange(4)}", epoch=rng.choice(["", "e1", "e2"]))
        else:
            first = self.broken_hello()
        body = [self.message() for _ in range(messages)]
        if rng.random() < 0.01:  # one message above the gRPC size limit
            too_big = b"\x12" + bytes(self.limits.max_message_bytes)
            body.insert(rng.randrange(len(body) + 1), too_big)
        return Plan(first, body, rng.choice(ENDINGS))

    def message(self) -> Message:
        _, make = self.rng.choice(self.mutations)
        return make()

    def broken_hello(self) -> Message:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return hello("x" * rng.choice([129, 5000]))  # longer than device.id
        if kind == 1:
            return hello("")
        if kind == 2:
            return hello("fuzz", token="t" * (self.limits.max_token_chars + 1))
        if kind == 3:
            event = hello("fuzz")
            event.hello.audio_format.sample_rate = rng.choice([0, 1, 10**9])
            return event
        if kind == 4:
            return self.random_bytes()
        return edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=1.0))

    # ------------------------------------------------------------------ messages

    def _chunk(self, pcm: bytes, seq: int | None = None, time: float = 0.0) -> edge_pb2.EdgeEvent:
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        return edge_pb2.EdgeEvent(audio=edge_pb2.AudioChunk(seq=seq, pcm=pcm, capture_time=time))

    def audio(self) -> Message:
        return self._chunk(bytes(2 * CHUNK * self.rng.choice([1, 1, 2, 5])), time=self.seq * 0.02)

    def speech_chunk(self) -> Message:
        size = 2 * CHUNK * self.rng.choice([1, 5, 25, 100])
        start = self.rng.randrange(0, max(1, len(self.speech) - size)) & ~1
        return self._chunk(self.speech[start : start + size], time=self.seq * 0.02)

    def bad_seq(self) -> Message:
        seq = self.rng.choice([0, self.seq - 1, self.seq + 10_000, (1 << 64) - 1])
        return self._chunk(bytes(2 * CHUNK), seq=max(0, seq))

    def odd_audio(self) -> Message:
        return self._chunk(bytes(self.rng.choice([1, 3, 639, 641])))

    def huge_audio(self) -> Message:
        too_long = 2 * RATE * (self.limits.max_audio_chunk_ms // 1000 + 1)
        return self._chunk(bytes(min(too_long, self.limits.max_message_bytes - 64)))

    def non_finite_time(self) -> Message:
        value = self.rng.choice([math.nan, math.inf, -math.inf])
        kind = self.rng.randrange(4)
        if kind == 0:
            return self._chunk(bytes(2 * CHUNK), time=value)
        if kind == 1:
            return edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=value))
        if kind == 2:
            frame = edge_pb2.VideoFrame(jpeg=b"\xff\xd8", capture_time=value)
            return edge_pb2.EdgeEvent(frame=frame)
        playback = edge_pb2.PlaybackEvent(
            turn_id="t", kind=edge_pb2.PlaybackEvent.STARTED, edge_time=value
        )
        return edge_pb2.EdgeEvent(playback=playback)

    def frame(self) -> Message:
        size = self.rng.choice([0, 10, 50_000])
        frame = edge_pb2.VideoFrame(
            seq=self.rng.randrange(1 << 32),
            jpeg=self.rng.randbytes(size),
            capture_time=self.rng.choice([self.rng.uniform(-1e9, 1e9), 1e300]),
            width=self.rng.randrange(1 << 32),
            height=self.rng.randrange(1 << 32),
        )
        return edge_pb2.EdgeEvent(frame=frame)

    def huge_frame(self) -> Message:
        jpeg = bytes(min(self.limits.max_frame_bytes + 1, self.limits.max_message_bytes - 64))
        return edge_pb2.EdgeEvent(frame=edge_pb2.VideoFrame(jpeg=jpeg))

    def playback(self) -> Message:
        turn_id = self.rng.choice(["", "t", "x" * 5000, self._text(36)])
        playback = edge_pb2.PlaybackEvent(turn_id=turn_id)
        playback.kind = self.rng.randrange(6)  # type: ignore[assignment]  # unknown values too
        return edge_pb2.EdgeEvent(playback=playback)

    def _text(self, n: int) -> str:
        return "".join(self.rng.choice(string.printable) for _ in range(n))

    def _spans(self, count: int, name_chars: int = 8) -> bytes:
        spans = [
            OtlpSpan(
                trace_id=self.rng.randbytes(16),
                span_id=self.rng.randbytes(8),
                name=self._text(name_chars),
                start_time_unix_nano=self.rng.randrange(1 << 64),
                end_time_unix_nano=self.rng.choice([self.rng.randrange(1 << 63), (1 << 64) - 1]),
            )
            for _ in range(count)
        ]
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
        )
        return request.SerializeToString()

    def spans(self) -> Message:
        otlp = self._spans(self.rng.randrange(1, 5), self.rng.choice([8, 300]))
        return edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=otlp))

    def many_spans(self) -> Message:
        otlp = self._spans(self.limits.max_spans_per_message + 1)
        return edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=otlp))

    def garbage_spans(self) -> Message:
        return edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=self.rng.randbytes(64)))

    def ping(self) -> Message:
        return edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=self.rng.uniform(-1e9, 1e9)))

    def random_bytes(self) -> Message:
        return self.rng.randbytes(self.rng.randrange(1, 200))

    def truncated(self) -> Message:
        data = self.speech_chunk()
        assert isinstance(data, edge_pb2.EdgeEvent)
        raw = data.SerializeToString()
        return raw[: self.rng.randrange(1, len(raw))]

    def bit_flip(self) -> Message:
        raw = bytearray(self.message_bytes())
        for _ in range(self.rng.randrange(1, 4)):
            raw[self.rng.randrange(len(raw))] ^= 1 << self.rng.randrange(8)
        return bytes(raw)

    def message_bytes(self) -> bytes:
        while True:
            made = self.message()
            data = made if isinstance(made, bytes) else made.SerializeToString()
            if data:
                return data

    def unknown_field(self) -> Message:
        # Field 99, length-delimited: valid protobuf that this EdgeEvent does not know.
        return b"\x9a\x06\x03abc" + self.ping().SerializeToString()  # type: ignore[union-attr]


async def run_fuzz(
    address: str,
    *,
    seed: int,
    sessions: int,
    messages: int,
    seconds: float,
    limits: LimitsConfig | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> dict[str, Any]:
    """Up to ``sessions`` fuzzed streams of ``messages`` each, for at most ``seconds``.

    Returns the inputs tried, the status each stream ended with, and ``unknown``:
    streams that ended with UNKNOWN (an exception escaped the server)."""
    fuzzer = Fuzzer(seed, limits)
    deadline = time.monotonic() + seconds
    tried, statuses, errors, ran = 0, Counter[str](), Counter[str](), 0
    details: list[str] = []
    for _ in range(sessions):
        if time.monotonic() >= deadline or not alive():
            break
        plan = fuzzer.plan(messages)
        stream = await RawStream(address).open(timeout=1.0 if plan.ending == "deadline" else None)
        stream.send(plan.first, *plan.messages)
        tried += 1 + len(plan.messages)
        ran += 1
        if plan.ending == "half-close":
            stream.close_send()
        elif plan.ending == "cancel":
            await asyncio.sleep(fuzzer.rng.uniform(0.0, 0.3))
            stream.cancel()
        elif plan.ending == "drop":
            await asyncio.sleep(fuzzer.rng.uniform(0.0, 0.3))
            await stream.channel.close(grace=None)
        status = await stream.finish(timeout=30)
        statuses[status.name if status else "none"] += 1
        if status in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
            details.append(f"{status.name} ({plan.ending}): {stream.details}")
        for error in stream.errors():
            errors[edge_pb2.Error.Code.Name(error.code)] += 1
    return {
        "seed": seed,
        "sessions": ran,
        "inputs_tried": tried,
        "statuses": dict(statuses),
        "errors_reported": dict(errors),
        "unknown": statuses.get("UNKNOWN", 0),
        "unexpected": details[:20],
    }
