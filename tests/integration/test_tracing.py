"""Tracing on the real server: OTLP to a real OTLP/gRPC receiver (the wire format Jaeger
accepts), the database store when the receiver is gone, and a stalled exporter that must
never hold up the audio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from parley import db
from parley.span_export import DatabaseSpanExporter, QueueingSpanProcessor
from parley.telemetry import Telemetry, setup_telemetry
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import EdgeClient, Stack, audio_events, hello, is_turn, speech
from tests.otlp_receiver import Receiver

FINISHED = edge_pb2.TurnEvent.FINISHED


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, grpc.aio.Server, int]]:
    servicer = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, server, port
    await server.stop(None)


async def one_turn(stack: Stack, seq: int = 0) -> edge_pb2.TurnEvent:
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate, start_seq=seq))
        return (await edge.wait_for(is_turn(FINISHED))).turn


def stored_trace(turn_id: str) -> tuple[str, set[str]]:
    with db.database.connection_context():
        trace_id = db.Turn.get_by_id(turn_id).trace_id
        names = {s.name for s in db.Span.select().where(db.Span.trace_id == trace_id)}
    return trace_id, names


async def test_spans_reach_an_otlp_receiver_and_the_database_survives_its_loss(
    stack: Stack, receiver, monkeypatch, database_url: str
):
    servicer, server, port = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    telemetry = setup_telemetry("parley-server", database_url=stack.database_url)
    assert len(telemetry.processors) == 2  # database and OTLP, both at once
    engines = {"stt": FixedStt(), "llm": ScriptedLlm("Done."), "tts": ToneTts()}
    await stack.start(engines, telemetry=telemetry)

    first = await one_turn(stack)
    # (in a thread: the receiver runs on this event loop)
    await asyncio.to_thread(telemetry.flush)
    trace_id, stored = stored_trace(first.turn_id)
    received = servicer.spans()
    for name in ("turn", "vad", "stt", "llm", "tts", "/parley.workers.v1.Llm/Generate"):
        assert received[name] == ("parley-server", trace_id), name
        assert name in stored

    # The collector goes away: turns go on, and the database still gets every span.
    await server.stop(None)
    second = await one_turn(stack, seq=10_000)
    assert not second.interrupted and second.latency_ms["first_audio_sent_ms"] > 0
    database = [p for p in telemetry.processors if isinstance(p.exporter, DatabaseSpanExporter)]
    await asyncio.to_thread(database[0].force_flush)
    trace_id, stored = stored_trace(second.turn_id)
    assert {"turn", "stt", "llm", "tts"} <= stored


class StalledExporter(SpanExporter):
    """An exporter stuck on a dead network: export blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


async def test_a_full_span_queue_never_delays_the_answer_audio(stack: Stack):
    stalled = StalledExporter()
    processor = QueueingSpanProcessor(stalled, max_queue=4, batch_size=2, interval_s=0.01)
    provider = TracerProvider(resource=Resource.create({"service.name": "parley-server"}))
    provider.add_span_processor(processor)
    engines = {"stt": FixedStt(), "llm": ScriptedLlm("One. Two. Three."), "tts": ToneTts()}
    await stack.start(engines, telemetry=Telemetry(provider, [processor]))
    try:
        turns = [await one_turn(stack, seq=i * 10_000) for i in range(3)]
    finally:
        stalled.release.set()
    assert processor.dropped > 0  # the queue was full while the turns ran
    for turn in turns:
        # The same order of magnitude as with no tracing at all (~10 ms here): a blocked
        # exporter would show up as seconds, or as a test timeout.
        assert turn.latency_ms["first_audio_sent_ms"] < 500
    processor.shutdown()


async def test_edge_spans_are_stored_only_for_the_sessions_own_turns(
    stack: Stack, database_url: str
):
    from edge.tracing import EdgeTracer
    from parley.telemetry import trace_id_of

    telemetry = setup_telemetry("parley-server", database_url=stack.database_url)
    engines = {"stt": FixedStt(), "llm": ScriptedLlm("Done."), "tts": ToneTts()}
    await stack.start(engines, telemetry=telemetry)
    samples, rate = speech()
    edge_tracer = EdgeTracer("test-device")
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        finished = (await edge.wait_for(is_turn(FINISHED))).turn
        ended = await edge.wait_for(is_turn(edge_pb2.TurnEvent.SPEECH_ENDED))
        own = ended.turn.traceparent
        foreign = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
        edge_tracer.record("edge.playback", own, 1.0, 2.0)
        edge_tracer.record("edge.injected", foreign, 1.0, 2.0)
        bad = edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=b"\x01garbage"))
        good = edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=edge_tracer.take()))
        await edge.send([bad, good])
        error = await edge.wait_for(lambda e: e.WhichOneof("event") == "error")
        await edge.send([edge_pb2.EdgeEvent(ping=edge_pb2.Ping())])
        await edge.wait_for(lambda e: e.WhichOneof("event") == "pong")
    assert error.error.code == edge_pb2.Error.BAD_REQUEST and not error.error.fatal
    await asyncio.to_thread(telemetry.flush)
    with db.database.connection_context():
        edge_spans = {
            (s.name, s.trace_id) for s in db.Span.select().where(db.Span.service == "parley-edge")
        }
    assert edge_spans == {("edge.playback", trace_id_of(own))}
    assert finished.turn_id
