"""Fixtures for the OpenAI engines: a real llama.cpp OpenAI-compatible server on the
stories260K model, and a small scripted fake of the OpenAI audio, chat and embeddings
endpoints (chat answers streamed chunk by chunk with chosen timing, as text or, when
the request asks for ``modalities: ["text", "audio"]``, as audio chunks with their
transcript; chat requests may carry ``input_audio`` and image parts; chosen
transcripts; speech as WAV or raw PCM at a chosen rate; embeddings from the words of
each input), which records every request and when it came."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import socket
import struct
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


def fake_pcm(text: str, samples_per_char: int = 100) -> bytes:
    """The PCM16 the fake speaks for ``text``: ``samples_per_char`` samples per character."""
    return bytes((i * 7 + len(text)) % 256 for i in range(2 * samples_per_char * len(text)))


def streamed_wav_header(rate: int, channels: int = 1) -> bytes:
    """A WAV header as a server streaming it writes one: unknown sizes (0xFFFFFFFF), and
    a LIST chunk before the data, as some servers add."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    info = b"INFOISFT\x06\x00\x00\x00fake\x00\x00"
    return (
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", len(info)) + info
        + b"data\xff\xff\xff\xff"
    )  # fmt: skip


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
    at: float = field(default_factory=time.monotonic)  # when the request arrived
    done_at: float | None = None  # when the fake finished streaming its answer


@dataclass
class ChatScript:
    """One streamed chat answer: ``deltas`` sent one chunk each, ``pause`` seconds apart,
    after ``first_pause`` seconds."""

    deltas: tuple[str, ...]
    pause: float = 0.03
    first_pause: float = 0.0

    @classmethod
    def pieces(cls, text: str, size: int = 3, **timing: float) -> ChatScript:
        """``text`` cut into deltas of ``size`` characters."""
        return cls(tuple(text[i : i + size] for i in range(0, len(text), size)), **timing)


@dataclass
class FakeOpenAI:
    """What the tests need to know about the fake (they use it only through the fixture).

    Tests script it by setting the fields: ``chat_scripts`` answer chat requests in
    order (then ``chat_deltas``), ``transcripts`` answer transcriptions in order (then a
    description of the audio), speech is ``speech_samples_per_char`` samples per
    character at ``speech_rate`` Hz, as WAV or raw PCM (``pcm_content_type``)."""

    base_url: str
    received: list[Received] = field(default_factory=list)
    api_key: str = API_KEY
    missing_model: str = MISSING_MODEL
    chat_deltas: tuple[str, ...] = CHAT_DELTAS
    chat_scripts: list[ChatScript] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    speech_rate: int = 24000
    speech_channels: int = 1
    speech_samples_per_char: int = 100
    pcm_content_type: str = "audio/pcm"
    wav_header: bytes | None = None  # None: streamed_wav_header(speech_rate, channels)

    def pcm_for(self, text: str) -> bytes:
        return fake_pcm(text, self.speech_samples_per_char)

    def last(self, path: str) -> Received:
        return [r for r in self.received if r.path == path][-1]

    def requests(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def spoken(self) -> list[str]:
        """The texts the speech endpoint was asked to say, in order."""
        return [r.json["input"] for r in self.requests("/v1/audio/speech")]

    def input_audio(self, index: int = -1) -> bytes:
        """The WAV of the ``input_audio`` part of a chat request (the last by default)."""
        (part,) = [
            p
            for m in self.requests("/v1/chat/completions")[index].json["messages"]
            if isinstance(m["content"], list)
            for p in m["content"]
            if p["type"] == "input_audio"
        ]
        assert part["input_audio"]["format"] == "wav"
        return base64.b64decode(part["input_audio"]["data"])


EMBEDDING_DIMENSIONS = 64


def fake_embedding(text: str) -> list[float]:
    """Each word adds one to a dimension chosen by its hash: texts sharing words are
    near (cosine), so the nearest passage to a query is the one with most of its words."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % EMBEDDING_DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


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
        fake = self.server.fake
        received = Received(self.path, {k.lower(): v for k, v in self.headers.items()})
        fake.received.append(received)
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
            language = received.fields.get("language", "")
            text = (
                fake.transcripts.pop(0) if fake.transcripts else f"  {heard}, language {language} "
            )
            return self._json(200, {"text": text})
        received.json = json.loads(body)
        if self._missing_model(received.json.get("model")):
            return
        if self.path == "/v1/audio/speech":
            pcm = fake.pcm_for(received.json["input"])
            if fake.speech_channels > 1:
                frames = [pcm[i : i + 2] * fake.speech_channels for i in range(0, len(pcm), 2)]
                pcm = b"".join(frames)
            form = received.json.get("response_format")
            if form == "wav":
                header = fake.wav_header
                if header is None:
                    header = streamed_wav_header(fake.speech_rate, fake.speech_channels)
                return self._chunked(byte_pieces(header + pcm), "audio/wav", received)
            if form == "pcm":
                return self._chunked(byte_pieces(pcm), fake.pcm_content_type, received)
            return self._error(400, f"this fake speaks wav or pcm, not {form!r}")
        if self.path == "/v1/chat/completions":
            if received.json.get("temperature", 1) > 2:
                return self._error(400, "temperature must be at most 2")
            script = fake.chat_scripts.pop(0) if fake.chat_scripts else ChatScript(CHAT_DELTAS)
            time.sleep(script.first_pause)
            if "audio" in received.json.get("modalities", []):
                audio = received.json.get("audio") or {}
                if audio.get("format") != "pcm16":
                    return self._error(400, "streamed audio must be pcm16")
                chunks = _sse_audio_chunks(script.deltas, fake.pcm_for)
            else:
                chunks = _sse_chunks(script.deltas)
            return self._chunked(chunks, "text/event-stream", received, script.pause)
        if self.path == "/v1/embeddings":
            inputs = received.json["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [
                {"object": "embedding", "index": i, "embedding": fake_embedding(text)}
                for i, text in enumerate(inputs)
            ]
            usage = {"prompt_tokens": 0, "total_tokens": 0}
            return self._json(
                200, {"object": "list", "data": data, "model": "fake", "usage": usage}
            )
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

    def _chunked(
        self, pieces: list[bytes], content_type: str, received: Received, pause: float = 0.03
    ) -> None:
        """Stream ``pieces`` as separate HTTP chunks, pausing so each arrives on its own.
        A client that hangs up (barge-in) ends the answer early."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
                time.sleep(pause)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            received.done_at = time.monotonic()


def _sse_chunks(deltas: tuple[str, ...]) -> list[bytes]:
    first = [_event({"role": "assistant", "content": ""}, None)]
    deltas = [_event({"content": text}, None) for text in deltas]
    return [*first, *deltas, _event({}, "stop"), b"data: [DONE]\n\n"]


def _sse_audio_chunks(deltas: tuple[str, ...], pcm_for: Any) -> list[bytes]:
    """An answer with audio, as OpenAI streams one: each piece's transcript, then its
    audio (base64 pcm16), in ``delta.audio``."""
    events = [_event({"role": "assistant"}, None)]
    for text in deltas:
        events.append(_event({"audio": {"id": "audio_fake", "transcript": text}}, None))
        data = base64.b64encode(pcm_for(text)).decode()
        events.append(_event({"audio": {"id": "audio_fake", "data": data}}, None))
    return [*events, _event({}, "stop"), b"data: [DONE]\n\n"]


def _event(delta: dict[str, Any], finish: str | None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
        "model": "fake", "choices": [choice],
    }  # fmt: skip
    return f"data: {json.dumps(chunk)}\n\n".encode()


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
