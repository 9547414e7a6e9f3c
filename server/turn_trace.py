"""The trace of one turn: a root ``turn`` span (its own trace, not a child of the
long-lived stream) with a ``vad`` child; the pipeline adds a child per stage (``stt``,
``llm``, ``tts``, ``speech_llm``, ``analyse``, ``retrieve``, ``caption``), the workers'
spans nest under those, and the edge parents its ``edge.capture`` and
``edge.playback`` spans on the turn through the traceparent sent in TurnEvent.

A speculative run (server/speculation.py) is part of its turn's trace: its stage spans
are children of ``turn`` like any other, and the ``turn`` span has the events
``speculation.started``, ``speculation.committed`` and ``speculation.discarded`` (with
the reason and the engine time wasted), plus the attributes
``parley.latency.speculation_started_ms``, ``parley.latency.speculations_discarded``
and ``parley.latency.speculation_model_wasted_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, format_trace_id

from parley.span_export import TURN_ID_ATTRIBUTE
from parley.telemetry import traceparent


class TurnTrace:
    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        turn_id: str,
        session_id: str,
        device_id: str,
        pipeline: str,
        speech_started_ago_s: float,
    ) -> None:
        """Start the turn's spans at the moment speech started (``speech_started_ago_s``
        ago: the VAD confirms speech a little after it starts)."""
        self.tracer = tracer
        started = time.time_ns() - int(speech_started_ago_s * 1e9)
        self.span = tracer.start_span(
            "turn",
            context=otel_context.Context(),  # a new trace, not the stream's
            start_time=started,
            attributes={
                TURN_ID_ATTRIBUTE: turn_id,
                "parley.session.id": session_id,
                "parley.device.id": device_id,
                "parley.pipeline": pipeline,
            },
        )
        self.context = trace.set_span_in_context(self.span)
        self.vad = tracer.start_span("vad", context=self.context, start_time=started)
        self.traceparent = traceparent(self.span)
        trace_id = self.span.get_span_context().trace_id
        self.trace_id = format_trace_id(trace_id) if trace_id else ""

    def child(self, name: str, attributes: Mapping[str, Any] | None = None) -> trace.Span:
        return self.tracer.start_span(name, context=self.context, attributes=attributes)

    def speech_ended(self, attributes: Mapping[str, Any]) -> None:
        self.vad.set_attributes(dict(attributes))
        self.vad.end()

    def finish(self, *, status: str, error: str, latency_ms: Mapping[str, float]) -> None:
        span = self.span
        span.set_attribute("parley.turn.status", status)
        span.set_attribute("parley.turn.was_interrupted", status == "interrupted")
        for key in (
            "first_audio_sent_ms",
            "overhead_ms",
            "turn_total_ms",
            "speculation_started_ms",  # answered speculatively: started this long before
            "speculations_discarded",
            "speculation_model_wasted_ms",
        ):
            if key in latency_ms:
                span.set_attribute(f"parley.latency.{key}", latency_ms[key])
        if "voice_to_voice_ms" in latency_ms:
            span.set_attribute("parley.voice_to_voice_s", latency_ms["voice_to_voice_ms"] / 1000)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        if self.vad.is_recording():
            self.vad.end()  # a turn cut short before its end was decided
        span.end()
