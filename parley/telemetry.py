"""OpenTelemetry for every role: one tracer provider per process, named for its role
(service.name parley-server, parley-worker-stt, parley-edge, ...), with exporters picked
by configuration and the standard OTEL_* variables:

- the database span exporter, the embedded default, whenever a database URL is given
  (turn it off with PARLEY_TRACES_DB=0);
- OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, over gRPC by
  default or HTTP with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf; OTEL_TRACES_EXPORTER=none
  turns it off. Both at once works;
- OTEL_SDK_DISABLED=true turns tracing off entirely (no spans are even created).

Every exporter sits behind a QueueingSpanProcessor, so exporting never blocks the audio
path. gRPC calls are traced with explicit interceptors that carry W3C trace context in
metadata; health checks are not traced, and the long-lived Converse stream is not one
giant span (each turn is its own trace, made by the server's session).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley.span_export import DatabaseSpanExporter, QueueingSpanProcessor

PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_METHODS = ("Converse",)  # per-turn traces instead of one per stream


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def otlp_exporter(env: Mapping[str, str]) -> SpanExporter | None:
    """The OTLP exporter the standard OTEL_* variables ask for, or None."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ValueError(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}")


@dataclass
class Telemetry:
    provider: trace.TracerProvider
    processors: list[QueueingSpanProcessor] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return isinstance(self.provider, TracerProvider)

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name)

    def export_foreign(self, spans: Iterable[ReadableSpan]) -> None:
        """Hand spans finished elsewhere (the edge's) to this process's exporters."""
        for span in spans:
            for processor in self.processors:
                processor.on_end(span)

    def client_interceptors(self) -> list[Any]:
        if not self.enabled:
            return []
        from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

        return list(
            aio_client_interceptors(
                tracer_provider=self.provider, filter_=filters.negate(filters.health_check())
            )
        )

    def server_interceptors(self) -> list[Any]:
        if not self.enabled:
            return []
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        untraced = filters.any_of(
            filters.health_check(), *(filters.method_name(m) for m in UNTRACED_METHODS)
        )
        return [
            aio_server_interceptor(tracer_provider=self.provider, filter_=filters.negate(untraced))
        ]

    def flush(self, timeout_s: float = 5.0) -> None:
        for processor in self.processors:
            processor.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    @property
    def dropped(self) -> int:
        return sum(p.dropped for p in self.processors)


def setup_telemetry(
    service: str,
    *,
    database_url: str | None = None,
    attributes: Mapping[str, str] | None = None,
    exporters: Sequence[SpanExporter] = (),
    env: Mapping[str, str] | None = None,
) -> Telemetry:
    """Tracing for this process (``service`` becomes service.name)."""
    env = os.environ if env is None else env
    if _true(env.get("OTEL_SDK_DISABLED")):
        return Telemetry(trace.NoOpTracerProvider())
    resource = Resource.create(
        {"service.name": service, "host.name": socket.gethostname(), **(attributes or {})}
    )
    provider = TracerProvider(resource=resource)
    chosen = list(exporters)
    if database_url and env.get("PARLEY_TRACES_DB", "1") != "0":
        chosen.append(DatabaseSpanExporter(database_url))
    otlp = otlp_exporter(env)
    if otlp is not None:
        chosen.append(otlp)
    processors = [QueueingSpanProcessor(exporter) for exporter in chosen]
    for processor in processors:
        provider.add_span_processor(processor)
    return Telemetry(provider, processors)


# --------------------------------------------------------------------------- W3C context


def traceparent(span: trace.Span) -> str:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


class _DictGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


def context_from_traceparent(value: str) -> Any:
    """The context a W3C ``traceparent`` names (an empty context if invalid)."""
    return PROPAGATOR.extract({"traceparent": value}, getter=_DictGetter())


def trace_id_of(value: str) -> str:
    """The 32-hex-digit trace id inside a ``traceparent`` ("" if none)."""
    parts = value.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""
