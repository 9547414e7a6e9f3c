"""Telemetry pieces: OTLP encoding both ways, exporter selection, the dropping queue,
the database exporter, and W3C trace context helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from parley import db, otlp
from parley.span_export import DatabaseSpanExporter, QueueingSpanProcessor
from parley.telemetry import (
    context_from_traceparent,
    setup_telemetry,
    trace_id_of,
    traceparent,
)


class Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def make_spans() -> list[ReadableSpan]:
    collect = Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "parley-edge"}))
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("turn", attributes={"parley.turn.id": "t1"}):
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_attribute("sizes", [1, 2, 3])
            child.set_attribute("ok", True)
            child.set_status(trace.Status(StatusCode.ERROR, "boom"))
    return collect.spans


def test_otlp_encoding_round_trips_what_the_store_and_jaeger_need():
    spans = make_spans()
    decoded = otlp.decode(otlp.encode(spans))
    assert [s.name for s in decoded] == ["child", "turn"]
    for before, after in zip(spans, decoded, strict=True):
        assert after.context.trace_id == before.context.trace_id
        assert after.context.span_id == before.context.span_id
        assert (after.parent.span_id if after.parent else None) == (
            before.parent.span_id if before.parent else None
        )
        assert (after.start_time, after.end_time) == (before.start_time, before.end_time)
        assert after.kind == before.kind
        assert after.resource.attributes["service.name"] == "parley-edge"
    child = decoded[0]
    assert child.attributes == {"sizes": (1, 2, 3), "ok": True}
    assert child.status.status_code is StatusCode.ERROR and child.status.description == "boom"


def test_otlp_decoding_rejects_garbage_and_floods():
    with pytest.raises(ValueError):
        otlp.decode(b"\xff\xff not protobuf")
    payload = otlp.encode(make_spans())
    with pytest.raises(ValueError, match="more than 1 spans"):
        otlp.decode(payload, max_spans=1)


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ["DatabaseSpanExporter"]),
        ({"PARLEY_TRACES_DB": "0"}, []),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
            ["DatabaseSpanExporter", "grpc"],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            ["DatabaseSpanExporter", "http"],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_TRACES_EXPORTER": "none"},
            ["DatabaseSpanExporter"],
        ),
    ],
)
def test_exporters_follow_the_standard_variables(env, exporters, tmp_path: Path):
    telemetry = setup_telemetry("parley-test", database_url=f"sqlite:///{tmp_path}/t.db", env=env)
    try:
        names = []
        for processor in telemetry.processors:
            exporter = processor.exporter
            kind = type(exporter).__module__
            names.append(
                type(exporter).__name__
                if isinstance(exporter, DatabaseSpanExporter)
                else ("grpc" if ".grpc." in kind else "http")
            )
        assert names == exporters
        assert telemetry.enabled
    finally:
        telemetry.shutdown()


def test_disabled_sdk_creates_no_spans_and_no_interceptors():
    telemetry = setup_telemetry(
        "parley-test", database_url="sqlite:///unused", env={"OTEL_SDK_DISABLED": "true"}
    )
    assert not telemetry.enabled
    assert telemetry.client_interceptors() == [] and telemetry.server_interceptors() == []
    span = telemetry.tracer("x").start_span("nothing")
    assert not span.is_recording()


class Stalled(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        return SpanExportResult.SUCCESS


def test_a_stalled_exporter_never_blocks_on_end_and_drops_are_counted():
    spans = make_spans()
    stalled = Stalled()
    processor = QueueingSpanProcessor(stalled, max_queue=100, batch_size=10, interval_s=0.01)
    time.sleep(0.05)
    started = time.perf_counter()
    for _ in range(5_000):
        processor.on_end(spans[0])
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # ~µs per span; a blocking queue would never return
    # At most one batch is in the exporter's hands; the rest of what did not fit is counted.
    assert 5_000 - 100 - 10 <= processor.dropped <= 5_000 - 100
    stalled.release.set()
    assert processor.force_flush(5_000)
    assert processor.exported + processor.dropped == 5_000
    processor.shutdown()


def test_database_exporter_stores_spans_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/spans.db"
    spans = make_spans()
    exporter = DatabaseSpanExporter(url)
    exporter.export(spans)
    exporter.export(spans)  # a retry does not duplicate
    with db.database.connection_context():
        rows = {r.name: r for r in db.Span.select()}
    assert set(rows) == {"turn", "child"}
    turn, child = rows["turn"], rows["child"]
    assert turn.trace_id == format_trace_id(spans[1].context.trace_id)
    assert child.parent_id == turn.span_id == format_span_id(spans[1].context.span_id)
    assert (turn.service, turn.turn_id, child.kind) == ("parley-edge", "t1", "CLIENT")
    assert child.status == "ERROR: boom"
    assert child.attributes == {"sizes": [1, 2, 3], "ok": True}
    assert turn.end_ns >= turn.start_ns > 0


def test_traceparent_round_trip():
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("turn")
    value = traceparent(span)
    trace_id = format_trace_id(span.get_span_context().trace_id)
    assert trace_id_of(value) == trace_id
    parent = trace.get_current_span(context_from_traceparent(value)).get_span_context()
    assert parent.span_id == span.get_span_context().span_id
    assert trace_id_of("garbage") == ""
    assert (
        not trace.get_current_span(context_from_traceparent("garbage")).get_span_context().is_valid
    )
