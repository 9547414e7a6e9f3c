"""The edge's own spans: recorded on the edge's clock, shipped over the stream.

A Pi needs no route to a collector: finished spans are encoded as an OTLP
ExportTraceServiceRequest and sent to the server in a Spans event; the server
re-exports them. Each span is a child of the turn, through the W3C traceparent the
server sent in TurnEvent. Built on the OTLP protobuf messages alone (no SDK), to keep
the agent small on a Pi.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from protos import edge_pb2

TURN_ID = "parley.turn.id"
Value = str | bool | int | float


def parse_traceparent(value: str) -> tuple[bytes, bytes] | None:
    """(trace id, parent span id) from a W3C traceparent, or None if malformed."""
    parts = value.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except ValueError:
        return None
    return (trace_id, span_id) if any(trace_id) and any(span_id) else None


def _any(value: Value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _attributes(values: Mapping[str, Value]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in values.items()]


class EdgeTracer:
    def __init__(self, device_id: str) -> None:
        self._resource = Resource(
            attributes=_attributes(
                {
                    "service.name": "parley-edge",
                    "parley.device.id": device_id,
                    "host.name": socket.gethostname(),
                }
            )
        )
        self._spans: list[Span] = []
        # Edge times are time.monotonic() seconds; spans want Unix nanoseconds.
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def _ns(self, monotonic_s: float) -> int:
        return int(monotonic_s * 1e9) + self._offset_ns

    def record(
        self,
        name: str,
        traceparent: str,
        start_s: float,
        end_s: float,
        attributes: Mapping[str, Value] | None = None,
    ) -> None:
        """A finished span ``name`` from ``start_s`` to ``end_s`` (edge clock), child of
        the span ``traceparent`` names (nothing is recorded without one)."""
        parent = parse_traceparent(traceparent)
        if parent is None:
            return
        trace_id, parent_id = parent
        self._spans.append(
            Span(
                trace_id=trace_id,
                span_id=os.urandom(8),
                parent_span_id=parent_id,
                name=name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=self._ns(start_s),
                end_time_unix_nano=self._ns(max(start_s, end_s)),
                attributes=_attributes(attributes or {}),
            )
        )

    def take(self) -> bytes:
        """The spans recorded since the last call, OTLP-encoded (b"" if none)."""
        if not self._spans:
            return b""
        spans, self._spans = self._spans, []
        scope = ScopeSpans(scope=InstrumentationScope(name="parley.edge"), spans=spans)
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=self._resource, scope_spans=[scope])]
        )
        return bytes(request.SerializeToString())


@dataclass
class _Turn:
    traceparent: str = ""
    speech_start: float | None = None
    first_played: float | None = None


class TurnSpans:
    """The edge's spans of each turn, from the events an edge sees: ``edge.capture``
    (speech start to end, from TurnEvents) and ``edge.playback`` (first answer audio
    played to finished or interrupted)."""

    def __init__(self, device_id: str, keep: int = 32) -> None:
        self.tracer = EdgeTracer(device_id)
        self._turns: dict[str, _Turn] = {}
        self._keep = keep

    def _turn(self, turn_id: str) -> _Turn:
        if turn_id not in self._turns:
            while len(self._turns) >= self._keep:  # bounded: forget the oldest turn
                del self._turns[next(iter(self._turns))]
            self._turns[turn_id] = _Turn()
        return self._turns[turn_id]

    def on_turn(self, event: edge_pb2.TurnEvent) -> None:
        turn = self._turn(event.turn_id)
        turn.traceparent = event.traceparent or turn.traceparent
        if event.kind == edge_pb2.TurnEvent.SPEECH_STARTED:
            turn.speech_start = event.edge_time
        elif event.kind == edge_pb2.TurnEvent.SPEECH_ENDED and turn.speech_start is not None:
            self.tracer.record(
                "edge.capture",
                turn.traceparent,
                turn.speech_start,
                event.edge_time,
                {TURN_ID: event.turn_id},
            )

    def on_playback(self, turn_id: str, kind: edge_pb2.PlaybackEvent.Kind, at: float) -> bytes:
        """Note a playback event; when the answer stops playing, the turn's spans are
        returned OTLP-encoded for a Spans event (b"" otherwise)."""
        turn = self._turn(turn_id)
        if kind == edge_pb2.PlaybackEvent.STARTED:
            turn.first_played = turn.first_played or at
            return b""
        if turn.first_played is not None:
            self.tracer.record(
                "edge.playback",
                turn.traceparent,
                turn.first_played,
                at,
                {
                    TURN_ID: turn_id,
                    "parley.playback.interrupted": kind != edge_pb2.PlaybackEvent.FINISHED,
                },
            )
        self._turns.pop(turn_id, None)
        return self.tracer.take()
