"""A stream's incoming messages, checked before the session uses them.

Undecodable messages (see :mod:`server.wire`), messages that break a ``[limits]``
setting (:mod:`server.limits`), audio chunks already taken or out of order
(:mod:`server.delivery`) and foreign spans that do not fit are dropped here, each kind
reported to the edge as an Error (rate limited per kind) and logged; the session only
sees what it can use.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_trace_id

from parley import otlp
from parley.config import LimitsConfig
from protos import edge_pb2
from server.delivery import AudioReceipts
from server.limits import Reporter, StreamGuard, Violation
from server.outbox import Emit

log = logging.getLogger(__name__)

ErrorCode = edge_pb2.Error.Code


class Inbound:
    def __init__(
        self,
        limits: LimitsConfig,
        audio_format: edge_pb2.AudioFormat,
        receipts: AudioReceipts,
        emit: Emit,
        session_id: str,
    ) -> None:
        self.limits = limits
        self.guard = StreamGuard(limits, audio_format)
        self.reporter = Reporter()
        self.receipts = receipts
        self.emit = emit
        self.session_id = session_id

    def admit(self, event: edge_pb2.EdgeEvent | None) -> edge_pb2.EdgeEvent | None:
        """The event if the session may use it; None when it was dropped (and said)."""
        if event is None:
            self.report(
                Violation("decode", "a message could not be decoded"), ErrorCode.BAD_REQUEST
            )
            return None
        violation = self.guard.check(event)
        if violation is not None:
            self.report(violation)
            return None
        if event.WhichOneof("event") == "audio":
            chunk = event.audio
            dropped = self.receipts.accept(chunk.seq)
            if dropped == "out of order":
                last = self.receipts.last
                problem = Violation("audio.seq", f"audio chunk {chunk.seq} does not follow {last}")
                self.report(problem, ErrorCode.BAD_REQUEST)
            if dropped:  # a repeat after a reconnect is expected: silent
                return None
        return event

    def spans(self, payload: bytes, trace_ids: Collection[str]) -> list[ReadableSpan]:
        """The spans of a Spans message that belong to ``trace_ids`` and fit."""
        try:
            decoded = otlp.decode(payload, max_spans=self.limits.max_spans_per_message)
        except otlp.TooManySpans as exc:
            self.report(Violation("limits.max_spans_per_message", str(exc)))
            return []
        except ValueError as exc:
            self.error(ErrorCode.BAD_REQUEST, f"bad spans message: {exc}")
            return []
        ours = [s for s in decoded if format_trace_id(s.context.trace_id) in trace_ids]
        kept, violation = self.guard.admit_spans(ours)
        if violation is not None:
            self.report(violation)
        return kept

    def report(
        self, violation: Violation, code: edge_pb2.Error.Code = ErrorCode.LIMIT_EXCEEDED
    ) -> None:
        """A dropped message: an Error naming the limit (rate limited per limit)."""
        message = self.reporter.note(violation)
        if message is None:
            return
        log.info("session %s: %s", self.session_id, message)
        error = edge_pb2.Error(code=code, message=message, limit=violation.limit)
        self.emit(edge_pb2.ServerEvent(error=error))

    def error(self, code: edge_pb2.Error.Code, message: str) -> None:
        self.emit(edge_pb2.ServerEvent(error=edge_pb2.Error(code=code, message=message)))
