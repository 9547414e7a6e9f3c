"""Fixtures for the OpenAI engines: a real llama.cpp OpenAI-compatible server on the
stories260K model, and a small fake of the OpenAI audio and chat endpoints."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

import workers

MODEL = Path(workers.__file__).parent / "assets" / "stories260K.gguf"
API_KEY = "test-key"
MISSING_MODEL = "missing-model"
CHAT_DELTAS = ("Hello", " there", ", friend")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the key and server themselves; a developer's env must not leak in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------------------- llama.cpp server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (…/v1) of ``python -m llama_cpp.server`` serving stories260K."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"):
        pytest.importorskip(module, reason="needs llama-cpp-python[server]")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL),
        "--chat_format", "alpaca", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "512",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 120 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ----------------------------------------------------------------- fake OpenAI


def fake_pcm(text: str) -> bytes:
    """The PCM16 the fake speaks for ``text``: 100 samples per character, a ramp."""
    return bytes((i * 7 + len(text)) % 256 for i in range(200 * len(text)))


def byte_pieces(data: bytes) -> list[bytes]:
    """``data`` cut so that pieces split samples (odd sizes) and arrive separately."""
    cuts = [1, 4, 4 + len(data) // 3, 5 + len(data) // 2]
    bounds = [0, *[c for c in cuts if c < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    file: tuple[str, str, bytes] | None = None  # filename, content type, data


@dataclass
class FakeOpenAI:
    """What the tests need to know about the fake (they use it only through the fixture)."""

    base_url: str
    received: list[Received] = field(default_factory=list)
    api_key: str = API_KEY
    missing_model: str = MISSING_MODEL
    chat_deltas: tuple[str, ...] = CHAT_DELTAS

    @staticmethod
    def pcm_for(text: str) -> bytes:
        return fake_pcm(text)

    def last(self, path: str) -> Received:
        return [r for r in self.received if r.path == path][-1]


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[Any]]:
    """Form fields and file parts of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    assert message.is_multipart(), "not a multipart body"
    fields: dict[str, str] = {}
    files = []
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = str(part.get_param("name", header="content-disposition"))
        if part.get_filename() is None:
            fields[name] = bytes(part.get_payload(decode=True)).decode()
        else:
            files.append(part)
    return fields, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        body = self._body()
        received = Received(self.path, {k.lower(): v for k, v in self.headers.items()})
        self.server.fake.received.append(received)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "Incorrect API key provided", code="invalid_api_key")
        if self.path == "/v1/audio/transcriptions":
            received.fields, files = parse_multipart(self.headers["Content-Type"], body)
            (part,) = files
            data = part.get_payload(decode=True)
            received.file = (part.get_filename(), part.get_content_type(), data)
            if self._missing_model(received.fields.get("model")):
                return
            with wave.open(BytesIO(data)) as wav:
                heard = f"{wav.getnframes()} frames at {wav.getframerate()} Hz"
            return self._json(200, {"text": f"  {heard}, language {received.fields['language']} "})
        received.json = json.loads(body)
        if self._missing_model(received.json.get("model")):
            return
        if self.path == "/v1/audio/speech":
            if received.json.get("response_format") != "pcm":
                return self._error(400, "this fake speaks pcm only")
            return self._chunked(byte_pieces(fake_pcm(received.json["input"])))
        if self.path == "/v1/chat/completions":
            if received.json.get("temperature", 1) > 2:
                return self._error(400, "temperature must be at most 2")
            return self._chunked(_sse_chunks())
        self._error(404, f"no route {self.path}")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _missing_model(self, model: str | None) -> bool:
        if model == MISSING_MODEL:
            message = f"The model `{model}` does not exist or you do not have access to it."
            self._error(404, message, code="model_not_found")
        return model == MISSING_MODEL

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        error = {"message": message, "type": "invalid_request_error", "code": code}
        self._json(status, {"error": error})

    def _chunked(self, pieces: list[bytes]) -> None:
        """Stream ``pieces`` as separate HTTP chunks, pausing so each arrives on its own."""
        sse = self.path.endswith("/completions")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
            time.sleep(0.03)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _sse_chunks() -> list[bytes]:
    def event(delta: dict[str, str], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        chunk = {
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
            "model": "fake", "choices": [choice],
        }  # fmt: skip
        return f"data: {json.dumps(chunk)}\n\n".encode()

    first = [event({"role": "assistant", "content": ""}, None)]
    deltas = [event({"content": text}, None) for text in CHAT_DELTAS]
    return [*first, *deltas, event({}, "stop"), b"data: [DONE]\n\n"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI API on a free loopback port (key ``API_KEY``)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeOpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
    )
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def refused_url() -> str:
    """A base URL on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"
