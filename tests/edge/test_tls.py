"""The edge dials the server over TLS with a CA file, and over mutual TLS with a
client certificate: real certificates (made with openssl) and a real TLS server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from edge.tls import secure_dial
from parley import rpc
from parley.errors import ConfigError

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl tool")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=parley-test-ca", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        extra = ["-extfile", "san.cnf"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)  # fmt: skip
    return d


async def _tls_server(certs: Path, *, client_auth: bool) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    credentials = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes() if client_auth else None,
        require_client_auth=client_auth,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


@pytest.fixture
async def tls_server(certs: Path) -> AsyncIterator[int]:
    server, port = await _tls_server(certs, client_auth=False)
    yield port
    await server.stop(None)


@pytest.fixture
async def mtls_server(certs: Path) -> AsyncIterator[int]:
    server, port = await _tls_server(certs, client_auth=True)
    yield port
    await server.stop(None)


async def _healthy(channel: grpc.aio.Channel) -> bool:
    async with channel:
        return await rpc.check_health(channel, timeout=3.0)


async def test_tls_with_the_ca_file(certs: Path, tls_server: int) -> None:
    ca = str(certs / "ca.pem")
    assert await _healthy(secure_dial(f"localhost:{tls_server}", ca=ca))
    # By IP address, the name checked can be given explicitly.
    assert await _healthy(secure_dial(f"127.0.0.1:{tls_server}", ca=ca, server_name="localhost"))


async def test_tls_refuses_a_server_the_ca_did_not_sign(certs: Path, tls_server: int) -> None:
    # The client's certificate is not a CA: trusting it verifies nothing.
    assert not await _healthy(secure_dial(f"localhost:{tls_server}", ca=str(certs / "client.pem")))
    assert not await _healthy(secure_dial(f"localhost:{tls_server}"))  # plain: no handshake


async def test_mutual_tls_needs_the_client_certificate(certs: Path, mtls_server: int) -> None:
    address, ca = f"localhost:{mtls_server}", str(certs / "ca.pem")
    assert not await _healthy(secure_dial(address, ca=ca))
    assert await _healthy(
        secure_dial(address, ca=ca, cert=str(certs / "client.pem"), key=str(certs / "client.key"))
    )


def test_tls_configuration_errors_are_clear(certs: Path) -> None:
    with pytest.raises(ConfigError, match="both a client certificate and its key"):
        secure_dial("localhost:1", ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"))
    with pytest.raises(ConfigError, match=r"cannot read the CA file /nonexistent\.pem"):
        secure_dial("localhost:1", ca="/nonexistent.pem")


def test_the_dry_run_asks_for_the_service_the_server_registers() -> None:
    from edge.build import EDGE_SERVICE
    from server.app import SERVICE_NAME

    assert EDGE_SERVICE == SERVICE_NAME
