"""The Parley server itself over TLS and mutual TLS, with the edge's own dialling code:
a Converse stream gets its Welcome, and an edge without a client certificate is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from edge.tls import secure_dial
from parley.config import ServerConfig
from protos import edge_pb2, edge_pb2_grpc
from tests.edge.test_tls import certs  # noqa: F401 - the fixture
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack, hello

pytestmark = pytest.mark.skipif(
    not __import__("shutil").which("openssl"), reason="needs the openssl tool"
)


async def first_event(channel: grpc.aio.Channel) -> edge_pb2.ServerEvent:
    async def requests():
        yield edge_pb2.EdgeEvent(hello=hello())

    call = edge_pb2_grpc.EdgeStub(channel).Converse(requests(), timeout=10)
    try:
        async for event in call:
            return event
    finally:
        call.cancel()
    raise AssertionError("no event")


async def test_the_server_speaks_mutual_tls(certs: Path, tmp_path: Path):  # noqa: F811
    stack = Stack(tmp_path)
    tls = {
        "tls_cert": str(certs / "server.pem"),
        "tls_key": str(certs / "server.key"),
        "tls_client_ca": str(certs / "ca.pem"),
    }
    assert {f.name for f in dataclasses.fields(ServerConfig)} >= set(tls)
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Hi."), "tts": ToneTts()}, server=tls)
    address = f"localhost:{stack.server.port}"
    try:
        ca = str(certs / "ca.pem")
        client = {"cert": str(certs / "client.pem"), "key": str(certs / "client.key")}
        async with secure_dial(address, ca=ca, **client) as channel:
            event = await first_event(channel)
        assert event.WhichOneof("event") == "welcome"
        # Trusting the server is not enough: the server wants the edge's certificate.
        async with secure_dial(address, ca=ca) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await first_event(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # And a plain-text edge gets nowhere.
        async with secure_dial(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await first_event(channel)
    finally:
        await stack.close()
