"""Values SQLite takes and PostgreSQL refuses (NUL characters, text longer than its
column) from an edge, an engine or a span are stored or refused clearly on both
backends: a turn is never lost to the database's strictness, nor a batch of spans."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from parley import db
from parley.span_export import DatabaseSpanExporter
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import EdgeClient, Stack, audio_events, hello, is_kind, is_turn
from tests.integration.conftest import speech as lamp

FINISHED = edge_pb2.TurnEvent.FINISHED


def _plain(text: str) -> str:
    """Text as written: PostgreSQL keeps U+FFFD where a NUL was."""
    return text.replace("\ufffd", "\x00")


async def test_nul_characters_from_the_edge_and_the_engines_are_stored(
    stack: Stack, database_url: str
):
    engines = {"stt": FixedStt("lamp\x00on"), "llm": ScriptedLlm("Done.\x00"), "tts": ToneTts()}
    await stack.start(engines)
    samples, rate = lamp()
    first = hello(device_id="kitchen\x00pi")
    first.agent_version = "1.0\x00" + "v" * 100  # (longer than its column: refused, test_limits)
    async with EdgeClient(stack.address, first) as edge:
        await edge.send(audio_events(samples, rate))
        finished = await edge.wait_for(is_turn(FINISHED))
    with db.database.connection_context():
        turn = db.Turn.get_by_id(finished.turn.turn_id)
        device = turn.conversation.device
        assert (turn.status, _plain(turn.transcript)) == ("done", "lamp\x00on")
        assert _plain(turn.response).strip() == "Done.\x00"
        assert _plain(device.id) == "kitchen\x00pi"
        assert _plain(device.agent_version).startswith("1.0\x00v")


async def test_a_device_id_longer_than_its_column_is_refused_clearly(
    stack: Stack, database_url: str
):
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Fine."), "tts": ToneTts()})
    async with EdgeClient(stack.address, hello(device_id="d" * 129)) as edge:
        error = await edge.wait_for(is_kind("error"))
        await asyncio.wait_for(edge.reader, 5)
    assert error.error.fatal and "128" in error.error.message
    assert edge.status == grpc.StatusCode.INVALID_ARGUMENT
    async with EdgeClient(stack.address, hello(device_id="d" * 128)) as edge:  # the limit
        await edge.send(audio_events(*lamp()))
        await edge.wait_for(is_turn(FINISHED))


def test_long_and_nul_span_fields_do_not_lose_the_batch(database_url: str):
    exporter = DatabaseSpanExporter(database_url)
    provider = TracerProvider(resource=Resource.create({"service.name": "edge\x00" + "s" * 300}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("n" * 1000) as odd:
        odd.set_status(Status(StatusCode.ERROR, "boom\x00" + "!" * 1000))
        odd.set_attribute("parley.turn.id", "t" * 300)
        odd.set_attribute("text", "a\x00b")
    with tracer.start_as_current_span("plain"):
        pass
    with db.database.connection_context():
        rows = {row.name[:5]: row for row in db.Span.select()}
    assert set(rows) == {"nnnnn", "plain"}
    odd_row = rows["nnnnn"]
    assert _plain(odd_row.status).startswith("ERROR: boom\x00!!!")
    assert _plain(odd_row.service).startswith("edge\x00s")
    assert odd_row.attributes["text"] == "a\x00b"  # JSON text escapes it
    assert odd_row.turn_id.startswith("ttt")
