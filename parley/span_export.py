"""Span processing that can never slow the audio path, and the database span exporter.

``QueueingSpanProcessor`` puts finished spans in a bounded queue and exports them in
batches from its own thread. When the queue is full (an exporter stalled, a collector
gone) spans are dropped and counted; ``on_end`` never waits.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence

import peewee
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from parley import db

log = logging.getLogger(__name__)

TURN_ID_ATTRIBUTE = "parley.turn.id"


class QueueingSpanProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue: int = 4096,
        batch_size: int = 256,
        interval_s: float = 2.0,
    ) -> None:
        self.exporter = exporter
        self.max_queue, self.batch_size, self.interval_s = max_queue, batch_size, interval_s
        self.dropped = 0  # spans thrown away because the queue was full
        self.exported = 0
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                    log.warning("span queue full: %d span(s) dropped so far", self.dropped)
                return
            self._queue.append(span)
            self._idle.clear()
            if len(self._queue) >= self.batch_size:
                self._wake.set()

    def _take(self) -> list[ReadableSpan]:
        with self._lock:
            count = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            while batch := self._take():
                try:
                    self.exporter.export(batch)
                    self.exported += len(batch)
                except (peewee.OperationalError, OSError) as exc:  # locked, disk full: said once
                    log.error("span export failed (%s); %d span(s) lost", exc, len(batch))
                except Exception:  # an exporter must never kill the export thread
                    log.exception("span export failed; %d span(s) lost", len(batch))
            with self._lock:
                if not self._queue:
                    self._idle.set()
            if self._stopping:
                return

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._wake.set()
        return self._idle.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        if self._stopping:
            return
        self.force_flush(5_000)
        self._stopping = True
        self._wake.set()
        self._thread.join(5)
        self.exporter.shutdown()


def _status(span: ReadableSpan) -> str:
    if span.status.status_code is StatusCode.ERROR:
        return f"ERROR: {span.status.description or ''}".rstrip(": ")
    return "OK" if span.status.status_code is StatusCode.OK else ""


def span_row(span: ReadableSpan) -> dict[str, object]:
    """The Span table's row for ``span`` (free text cut to its columns' lengths)."""
    context = span.get_span_context()
    assert context is not None
    attributes = dict(span.attributes or {})
    service = str(span.resource.attributes.get("service.name", ""))
    return {
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
        "parent_id": format_span_id(span.parent.span_id) if span.parent else "",
        "name": db.clip(db.Span.name, span.name),
        "service": db.clip(db.Span.service, service),
        "kind": span.kind.name,
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status": db.clip(db.Span.status, _status(span)),
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()},
        "turn_id": db.clip(db.Span.turn_id, str(attributes.get(TURN_ID_ATTRIBUTE, ""))),
    }


class DatabaseSpanExporter(SpanExporter):
    """Writes spans to the Span table (any peewee database), a batch per transaction."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        db.open_database(self.database_url)
        rows = [span_row(span) for span in spans]
        with db.database.connection_context(), db.write_transaction():
            db.Span.insert_many(rows).on_conflict_ignore().execute()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass
