"""Workers behind a token, TLS and mutual TLS, with real certificates (made by openssl)
and real gRPC servers: calls without the right token or certificate are refused, health
checks stay open, a worker will not listen openly beyond loopback, and a whole turn
runs through TLS + token workers."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import grpc
import pytest

from parley import rpc
from parley.config import WorkersConfig
from parley.security import InsecureListenError, dial_worker
from protos import edge_pb2
from protos import workers_pb2 as pb
from protos import workers_pb2_grpc as pb_grpc
from tests.edge.test_tls import certs  # noqa: F401 - the fixture
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    free_address,
    hello,
    is_turn,
    speech,
)
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine
from workers.main import serve_engine

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl tool")
Turn = edge_pb2.TurnEvent.Kind
TOKEN = "worker-secret-" + "x" * 20


def secured(certs: Path, *, mutual: bool = True, token: str = TOKEN) -> WorkersConfig:  # noqa: F811
    """Both halves: the worker's certificate (and client CA), the server's trust (and
    client certificate), and the token."""
    return WorkersConfig(
        token=token,
        tls_cert=str(certs / "server.pem"),
        tls_key=str(certs / "server.key"),
        tls_client_ca=str(certs / "ca.pem") if mutual else "",
        tls_ca=str(certs / "ca.pem"),
        tls_client_cert=str(certs / "client.pem") if mutual else "",
        tls_client_key=str(certs / "client.key") if mutual else "",
    )


async def _describe(address: str, security: WorkersConfig) -> pb.EngineInfo:
    async with dial_worker(address, security) as channel:
        return await pb_grpc.LlmStub(channel).Describe(pb.DescribeRequest(), timeout=5)


async def _generate(address: str, security: WorkersConfig) -> str:
    async with dial_worker(address, security) as channel:
        call = pb_grpc.LlmStub(channel).Generate(
            pb.LlmRequest(messages=[pb.ChatMessage(role="user", content="hi")]), timeout=5
        )
        return "".join([delta.text async for delta in call])


async def _refused_with(address: str, security: WorkersConfig) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _describe(address, security)
    with pytest.raises(grpc.aio.AioRpcError):
        await _generate(address, security)
    return refused.value.code()


async def test_a_token_worker_refuses_calls_without_the_token() -> None:
    address = free_address()
    server, _ = await serve_engine(
        "llm", "instant", InstantLlmEngine(), address, security=WorkersConfig(token=TOKEN)
    )
    try:
        assert (await _describe(address, WorkersConfig(token=TOKEN))).engine
        assert await _generate(address, WorkersConfig(token=TOKEN))
        unauthenticated = grpc.StatusCode.UNAUTHENTICATED
        assert await _refused_with(address, WorkersConfig()) == unauthenticated
        assert await _refused_with(address, WorkersConfig(token="wrong")) == unauthenticated
        assert await _refused_with(address, WorkersConfig(token=TOKEN + "x")) == unauthenticated
        async with rpc.dial(address) as channel:  # health checks need no token
            assert await rpc.check_health(channel, timeout=3)
    finally:
        await server.stop(None)


async def test_a_mutual_tls_worker_wants_the_servers_certificate(certs: Path) -> None:  # noqa: F811
    address = free_address()
    security = secured(certs)
    server, _ = await serve_engine("llm", "instant", InstantLlmEngine(), address, security=security)
    try:
        assert await _generate(address, security)
        # TLS trusting the CA, the right token, but no client certificate: no handshake.
        no_cert = dataclasses.replace(security, tls_client_cert="", tls_client_key="")
        assert await _refused_with(address, no_cert) == grpc.StatusCode.UNAVAILABLE
        # Plain text gets nowhere either; the certificate without the token is refused.
        assert await _refused_with(address, WorkersConfig(token=TOKEN)) == (
            grpc.StatusCode.UNAVAILABLE
        )
        no_token = dataclasses.replace(security, token="")
        assert await _refused_with(address, no_token) == grpc.StatusCode.UNAUTHENTICATED
        # Health over mutual TLS, without the token.
        async with dial_worker(address, no_token) as channel:
            assert await rpc.check_health(channel, timeout=3)
    finally:
        await server.stop(None)


async def test_a_worker_will_not_listen_openly_beyond_loopback(certs: Path) -> None:  # noqa: F811
    with pytest.raises(InsecureListenError) as refused:
        await serve_engine("llm", "instant", InstantLlmEngine(), "0.0.0.0:0")
    message = str(refused.value)
    assert "llm worker" in message and "PARLEY_WORKERS_TOKEN" in message
    assert "--insecure" in message
    # TLS alone authenticates nobody; a token, mutual TLS or --insecure will do.
    tls_only = secured(certs, mutual=False, token="")
    with pytest.raises(InsecureListenError):
        await serve_engine("llm", "instant", InstantLlmEngine(), "0.0.0.0:0", security=tls_only)
    for security in (
        WorkersConfig(token=TOKEN),
        dataclasses.replace(secured(certs), token=""),
        WorkersConfig(insecure=True),
    ):
        server, port = await serve_engine(
            "llm", "instant", InstantLlmEngine(), "0.0.0.0:0", security=security
        )
        await server.stop(None)
        assert port > 0


async def test_a_turn_runs_through_tls_and_token_workers(stack: Stack, certs: Path) -> None:  # noqa: F811
    engines = {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}
    await stack.start(engines, workers=secured(certs))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
        transcript = next(e.transcript.text for e in edge.events if e.HasField("transcript"))
        audio = [e for e in edge.events if e.HasField("audio")]
    assert not finished.turn.interrupted and transcript and audio
    assert not edge.errors()


async def test_a_server_with_the_wrong_worker_token_gets_a_clear_error(
    stack: Stack,
    certs: Path,  # noqa: F811
) -> None:
    engines = {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}
    workers = secured(certs)
    await stack.start(engines, workers=workers, dial=dataclasses.replace(workers, token="stale"))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        await edge.wait_until(lambda _: bool(edge.errors()))
    (error,) = edge.errors()[:1]
    assert "refused the server" in error.message and "token" in error.message
    assert not error.fatal  # the session stays up


async def test_a_refused_streaming_call_reports_unauthenticated_every_time() -> None:
    """A client still streaming audio when it is refused gets the real status, not
    grpc.aio's "Internal error from Core" (grpc/grpc#36066: the refusal reads the
    request stream to its end first)."""
    address = free_address()
    server, _ = await serve_engine(
        "stt", "instant", InstantSttEngine(), address, security=WorkersConfig(token=TOKEN)
    )

    async def requests():  # type: ignore[no-untyped-def]
        yield pb.SttRequest(config=pb.SttConfig())
        for _ in range(30):
            yield pb.SttRequest(audio=b"\0" * 32000)

    codes = []
    try:
        async with dial_worker(address, WorkersConfig(token="wrong")) as channel:
            for _ in range(10):
                call = pb_grpc.SttStub(channel).Transcribe(requests(), timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _reply in call:
                        pass
                codes.append(refused.value.code())
    finally:
        await server.stop(None)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 10
