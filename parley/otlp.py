"""OTLP (protobuf) encoding of finished spans, both ways.

The edge encodes its spans as an ExportTraceServiceRequest and sends the bytes over the
Converse stream (a Pi needs no route to a collector); the server decodes them back into
SDK spans and hands them to its own exporters (database, OTLP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(items: Sequence[KeyValue]) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def _context(trace_id: bytes, span_id: bytes) -> SpanContext:
    return SpanContext(
        trace_id=int.from_bytes(trace_id, "big"),
        span_id=int.from_bytes(span_id, "big"),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


class TooManySpans(ValueError):
    """A message holds more spans than the caller allows."""


def decode(payload: bytes, max_spans: int = 1000) -> list[ReadableSpan]:
    """Spans from an encoded ExportTraceServiceRequest (ValueError if malformed,
    TooManySpans above ``max_spans``)."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError
        raise ValueError(f"not an OTLP trace export request: {exc}") from None
    spans: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(scope_spans.scope.name, scope_spans.scope.version)
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise ValueError("span with a malformed trace or span id")
                if len(spans) >= max_spans:
                    raise TooManySpans(f"more than {max_spans} spans in one message")
                parent = span.parent_span_id
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=_context(span.trace_id, span.span_id),
                        parent=_context(span.trace_id, parent) if len(parent) == 8 else None,
                        resource=resource,
                        attributes=_attributes(span.attributes),
                        kind=SpanKind(max(0, span.kind - 1)),  # OTLP counts from UNSPECIFIED
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                        status=Status(StatusCode(span.status.code), span.status.message or None),
                        instrumentation_scope=scope,
                    )
                )
    return spans
