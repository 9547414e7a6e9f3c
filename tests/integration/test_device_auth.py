"""Who may open a Converse stream, on a real server and store: per-device tokens
(issued, checked against the Hello's device, revoked), the open loopback default, the
refusal to listen beyond loopback with no authentication, and what the store records."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import grpc
import pytest

from parley import db
from parley.cli import main
from parley.security import InsecureListenError
from protos import edge_pb2, edge_pb2_grpc
from server import devices
from tests.edge.test_tls import certs  # noqa: F401 - the fixture
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    hello,
    is_kind,
    is_turn,
    speech,
)

Code = edge_pb2.Error.Code
Turn = edge_pb2.TurnEvent.Kind
ENGINES = {"stt": FixedStt("lamp on"), "llm": ScriptedLlm("Done."), "tts": ToneTts()}


def _store(function, *args):  # type: ignore[no-untyped-def]
    with db.database.connection_context():
        return function(*args)


def _open_store(stack: Stack) -> None:
    db.open_database(f"sqlite:///{stack.home}/test.db")


async def _first(address: str, first: edge_pb2.Hello) -> tuple[edge_pb2.ServerEvent, EdgeClient]:
    """The first server event for a Hello, and the (finished or open) client."""
    async with EdgeClient(address, first) as edge:
        event = await edge.wait_for(lambda e: e.WhichOneof("event") in ("welcome", "error"))
        if event.WhichOneof("event") == "error":
            await asyncio.wait_for(edge.reader, 5)
    return event, edge


async def _refused(address: str, first: edge_pb2.Hello) -> str:
    event, edge = await _first(address, first)
    assert event.WhichOneof("event") == "error", event
    assert event.error.code == Code.UNAUTHENTICATED and event.error.fatal
    assert edge.status == grpc.StatusCode.UNAUTHENTICATED
    return str(event.error.message)


async def _welcomed(address: str, first: edge_pb2.Hello) -> str:
    event, _ = await _first(address, first)
    assert event.WhichOneof("event") == "welcome", event
    return str(event.welcome.conversation_id)


def _auth(conversation_id: str) -> tuple[str, str, str]:
    row = _store(db.Conversation.get_by_id, conversation_id)
    return str(row.device_id), str(row.auth), str(row.peer)


async def test_a_fresh_loopback_server_admits_any_edge(stack: Stack) -> None:
    await stack.start(ENGINES)
    conversation = await _welcomed(stack.address, hello(device_id="kitchen"))
    device, auth, peer = _auth(conversation)
    assert (device, auth) == ("kitchen", "none")
    assert peer.startswith("ipv4:127.0.0.1:")


async def test_device_tokens_admit_their_own_device_only(stack: Stack) -> None:
    await stack.start(ENGINES)
    kitchen = _store(devices.add_device, "kitchen")
    hall = _store(devices.add_device, "hall")
    assert kitchen.startswith("pdt_") and len(kitchen) > 40 and kitchen != hall

    # The first token closes the door even on loopback; the refusal says what to do.
    missing = await _refused(stack.address, hello(device_id="kitchen"))
    assert "parley device add kitchen" in missing and "PARLEY_EDGE_TOKEN" in missing
    conversation = await _welcomed(stack.address, hello(device_id="kitchen", token=kitchen))
    assert _auth(conversation)[:2] == ("kitchen", "device token")

    another = await _refused(stack.address, hello(device_id="hall", token=kitchen))
    assert "another device" in another and "kitchen" not in another  # names no other device
    assert "wrong token" in await _refused(stack.address, hello(device_id="hall", token="pdt_x"))
    assert "wrong token" in await _refused(stack.address, hello(device_id="kitchen", token=hall))

    _store(devices.revoke_device, "kitchen")
    revoked = await _refused(stack.address, hello(device_id="kitchen", token=kitchen))
    assert "revoked" in revoked
    await _welcomed(stack.address, hello(device_id="hall", token=hall))  # others unaffected
    # A new token for the device works; the revoked one stays refused.
    renewed = _store(devices.add_device, "kitchen")
    await _welcomed(stack.address, hello(device_id="kitchen", token=renewed))
    assert "revoked" in await _refused(stack.address, hello(device_id="kitchen", token=kitchen))


async def test_strangers_are_refused_before_learning_the_pipeline_names(stack: Stack) -> None:
    await stack.start(ENGINES)
    token = _store(devices.add_device, "kitchen")
    unknown = hello(device_id="kitchen", pipeline="no-such-pipeline")
    message = await _refused(stack.address, unknown)
    assert "test" not in message and "configured" not in message  # no pipeline names
    # An admitted device asking for an unknown pipeline is told which ones exist.
    unknown.token = token
    event, _ = await _first(stack.address, unknown)
    assert event.error.code == Code.UNKNOWN_PIPELINE and "test" in event.error.message


async def test_a_turn_with_a_device_token_is_stored_with_its_device(stack: Stack) -> None:
    await stack.start(ENGINES)
    token = _store(devices.add_device, "kitchen")
    samples, rate = speech()
    async with EdgeClient(stack.address, hello(device_id="kitchen", token=token)) as edge:
        welcome = await edge.wait_for(is_kind("welcome"))
        await edge.send(audio_events(samples, rate))
        finished = await edge.wait_for(is_turn(Turn.FINISHED))
    turn = _store(db.Turn.get_by_id, finished.turn.turn_id)
    assert turn.status == "done" and turn.transcript == "lamp on"
    assert turn.conversation_id == welcome.welcome.conversation_id
    assert _auth(turn.conversation_id)[:2] == ("kitchen", "device token")


async def test_only_the_digest_is_stored(stack: Stack) -> None:
    await stack.start(ENGINES)
    token = _store(devices.add_device, "kitchen")
    row = _store(db.DeviceToken.get, db.DeviceToken.device == "kitchen")
    assert row.digest != token and len(row.digest) == 64 and token.startswith(row.hint)
    stored = b"".join(p.read_bytes() for p in stack.home.glob("test.db*"))
    assert token.encode() not in stored and token[4:].encode() not in stored


async def test_the_deprecated_shared_token_still_admits_any_device(stack: Stack) -> None:
    await stack.start(ENGINES, server={"token": "shared-secret"})
    conversation = await _welcomed(stack.address, hello(device_id="old-pi", token="shared-secret"))
    assert _auth(conversation)[:2] == ("old-pi", "shared token")
    assert "missing token" in await _refused(stack.address, hello(device_id="old-pi"))
    assert "wrong token" in await _refused(stack.address, hello(device_id="old-pi", token="x"))


async def test_require_token_closes_a_loopback_server(stack: Stack) -> None:
    await stack.start(ENGINES, server={"require_token": True})
    assert "missing token" in await _refused(stack.address, hello())


# ---------------------------------------------------------------- listening beyond loopback


async def test_listening_beyond_loopback_without_authentication_is_refused(stack: Stack) -> None:
    with pytest.raises(InsecureListenError) as refused:
        await stack.start(ENGINES, listen="0.0.0.0:0")
    message = str(refused.value)
    assert "0.0.0.0:0" in message and "parley device add" in message
    assert "tls_client_ca" in message and "--insecure" in message
    assert stack.server is None


async def test_insecure_lets_anyone_in_beyond_loopback(stack: Stack) -> None:
    await stack.start(ENGINES, listen="0.0.0.0:0", server={"insecure": True})
    conversation = await _welcomed(stack.address, hello(device_id="anyone"))
    assert _auth(conversation)[:2] == ("anyone", "none")


async def test_with_device_tokens_the_server_listens_beyond_loopback(stack: Stack) -> None:
    _open_store(stack)
    token = _store(devices.add_device, "kitchen")
    await stack.start(ENGINES, listen="0.0.0.0:0")
    await _welcomed(stack.address, hello(device_id="kitchen", token=token))
    assert "missing token" in await _refused(stack.address, hello(device_id="kitchen"))
    # Revoking every token does not open a server that listens beyond loopback.
    _store(devices.revoke_device, "kitchen")
    assert "missing token" in await _refused(stack.address, hello(device_id="kitchen"))


async def test_insecure_does_not_switch_off_issued_tokens(stack: Stack) -> None:
    _open_store(stack)
    token = _store(devices.add_device, "kitchen")
    await stack.start(ENGINES, listen="0.0.0.0:0", server={"insecure": True})
    assert "missing token" in await _refused(stack.address, hello(device_id="kitchen"))
    await _welcomed(stack.address, hello(device_id="kitchen", token=token))


def test_device_names_are_checked(tmp_path: Path) -> None:
    db.open_database(f"sqlite:///{tmp_path}/names.db")
    for bad in ("", " kitchen", "kit chen", "-x", "a" * 129, "kitchen\n", "ku\u0308che"):
        with pytest.raises(devices.DeviceError, match="a device name has"):
            _store(devices.add_device, bad)
    _store(devices.add_device, "kitchen-pi.lan")
    with pytest.raises(devices.DeviceError, match="already has a token"):
        _store(devices.add_device, "kitchen-pi.lan")
    with pytest.raises(devices.DeviceError, match="no active token"):
        _store(devices.revoke_device, "nobody")
    db.database.close()


async def _welcome_over_mtls(address: str, certs: Path, first: edge_pb2.Hello) -> str:  # noqa: F811
    from edge.tls import secure_dial

    async def requests():  # type: ignore[no-untyped-def]
        yield edge_pb2.EdgeEvent(hello=first)
        await asyncio.sleep(30)

    async with secure_dial(
        address,
        ca=str(certs / "ca.pem"),
        cert=str(certs / "client.pem"),
        key=str(certs / "client.key"),
    ) as channel:
        call = edge_pb2_grpc.EdgeStub(channel).Converse(requests(), timeout=10)
        try:
            async for event in call:
                assert event.WhichOneof("event") == "welcome", event
                return str(event.welcome.conversation_id)
        finally:
            call.cancel()
    raise AssertionError("no event")


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl tool")
async def test_mutual_tls_authenticates_devices_beyond_loopback(
    stack: Stack,
    certs: Path,  # noqa: F811
) -> None:
    tls = {
        "tls_cert": str(certs / "server.pem"),
        "tls_key": str(certs / "server.key"),
        "tls_client_ca": str(certs / "ca.pem"),
    }
    await stack.start(ENGINES, listen="0.0.0.0:0", server=tls)  # no --insecure needed
    address = f"localhost:{stack.server.port}"  # type: ignore[union-attr]
    conversation = await _welcome_over_mtls(address, certs, hello(device_id="kitchen"))
    assert _auth(conversation)[:2] == ("kitchen", "mTLS CN=client")


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl tool")
async def test_require_token_wants_a_token_on_top_of_the_certificate(
    stack: Stack,
    certs: Path,  # noqa: F811
) -> None:
    tls = {
        "tls_cert": str(certs / "server.pem"),
        "tls_key": str(certs / "server.key"),
        "tls_client_ca": str(certs / "ca.pem"),
        "require_token": True,
    }
    await stack.start(ENGINES, server=tls)
    token = _store(devices.add_device, "kitchen")
    address = f"localhost:{stack.server.port}"  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="missing token"):
        await _welcome_over_mtls(address, certs, hello(device_id="kitchen"))
    conversation = await _welcome_over_mtls(address, certs, hello(device_id="kitchen", token=token))
    assert _auth(conversation)[:2] == ("kitchen", "device token + mTLS CN=client")


def test_the_device_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["device", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("list")
    assert code == 0 and "no device tokens" in out
    code, out, _ = run("add", "kitchen")
    first = re.search(r"^PARLEY_EDGE_TOKEN=(pdt_[\w-]{43})$", out, re.M)
    assert code == 0 and first
    code, _, err = run("add", "kitchen")
    assert code == 2 and "already has a token" in err and "--replace" in err
    code, out, _ = run("add", "kitchen", "--replace")
    second = re.search(r"^PARLEY_EDGE_TOKEN=(pdt_\S+)$", out, re.M)
    assert code == 0 and second and second.group(1) != first.group(1)
    code, out, _ = run("list")
    assert out.count("kitchen") == 1 and first.group(1) not in out
    code, out, _ = run("list", "--all", "--json")
    rows = json.loads(out)
    assert [(r["device"], r["revoked_at"] is None) for r in rows] == [
        ("kitchen", True),
        ("kitchen", False),
    ]
    assert all(second.group(1) not in r["token"] for r in rows)
    assert run("revoke", "kitchen")[0] == 0
    code, _, err = run("revoke", "kitchen")
    assert code == 2 and "no active token" in err
    code, _, err = run("add", "bad name")
    assert code == 2 and "a device name has" in err
    db.open_database(f"sqlite:///{tmp_path}/parley.db")
    with db.database.connection_context():
        with pytest.raises(devices.TokenRefused, match="revoked"):
            devices.verify("kitchen", second.group(1))
