"""A real OTLP/gRPC trace receiver: the opentelemetry-proto TraceService, as a
collector (or Jaeger) runs it on port 4317. In a test's own event loop
(:class:`Receiver`), or as a process of its own for tests that need a collector on
another host: ``python -m tests.otlp_receiver --listen HOST:PORT --out FILE`` writes
one JSON line per span received and stops on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every export request (and, given ``out``, appends its spans to that file)."""

    def __init__(self, out: Path | None = None) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.out = out

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        if self.out is not None:
            with self.out.open("a") as fh:
                fh.writelines(json.dumps(record) + "\n" for record in records(request))
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> dict[str, tuple[str, str]]:
        """span name -> (service.name, trace id)"""
        return {r["name"]: (r["service"], r["trace_id"]) for q in self.requests for r in records(q)}


def records(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """One dict per span: name, trace_id (hex), start_ns, error (its status), and the
    resource's service (service.name) and instance (service.instance.id)."""
    out = []
    for resource_spans in request.resource_spans:
        attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                out.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "start_ns": span.start_time_unix_nano,
                        "service": attrs.get("service.name", ""),
                        "instance": attrs.get("service.instance.id", ""),
                        "error": span.status.code == span.status.STATUS_CODE_ERROR,
                    }
                )
    return out


async def serve(listen: str, out: Path) -> None:
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--out", required=True, type=Path, help="JSON lines, one per span")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.out))
