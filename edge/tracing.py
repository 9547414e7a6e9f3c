"""The edge's own spans: recorded on the edge's clock, shipped over the stream.

A Pi needs no route to a collector: finished spans are OTLP-encoded and sent to the
server in a Spans event, and the server re-exports them. Each span is parented on the
turn through the traceparent the server sent in TurnEvent.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from parley import otlp
from parley.telemetry import context_from_traceparent


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


class EdgeTracer:
    def __init__(self, device_id: str) -> None:
        self._collected = _Collect()
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": "parley-edge",
                    "parley.device.id": device_id,
                    "host.name": socket.gethostname(),
                }
            )
        )
        provider.add_span_processor(SimpleSpanProcessor(self._collected))
        self.tracer = provider.get_tracer("parley.edge")
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
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """A finished span ``name`` from ``start_s`` to ``end_s`` (edge clock), child of
        the span that ``traceparent`` names."""
        if not traceparent:
            return
        span = self.tracer.start_span(
            name,
            context=context_from_traceparent(traceparent),
            start_time=self._ns(start_s),
            attributes=dict(attributes or {}),
        )
        span.end(end_time=self._ns(max(start_s, end_s)))

    def take(self) -> bytes:
        """The spans finished since the last call, OTLP-encoded (b"" if none)."""
        spans, self._collected.spans = self._collected.spans, []
        return otlp.encode(spans) if spans else b""
