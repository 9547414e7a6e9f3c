"""`parley models`: pulling the real models (offline error, local mirror) and making sure
a pipeline's model files exist (tiny ones are built, real ones are asked for)."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.commands.models import (
    REAL_MODELS,
    ensure_models,
    missing_models,
    pipeline_model_paths,
    pull,
)
from parley.config import Config, load_config
from parley.errors import ParleyError

DEFAULT = [m for m in REAL_MODELS if m.default]  # what a plain `parley models pull` fetches
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./parley.toml
    # urllib honours *_proxy variables; loopback must be reached directly.
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP mirror laid out like the hub; yields (base URL, requested paths)."""
    root = tmp_path / "mirror"
    for model in REAL_MODELS:
        path = root / urllib.parse.unquote(model.path)  # as the URL's path reads
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"fake {model.dest}\n".encode() * 100)
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def config(home: Path) -> Config:
    return load_config(None, {"PARLEY_HOME": str(home)})


# --------------------------------------------------------------------------- pull


def test_offline_pull_lists_every_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base + "/")
    models = tmp_path / "models"
    present = DEFAULT[-1]
    (models / present.dest).parent.mkdir(parents=True)
    (models / present.dest).write_text("already here")

    with pytest.raises(ParleyError) as info:
        pull(models)

    message = str(info.value)
    assert "looks offline" in message
    assert "PARLEY_MODELS_MIRROR" in message
    for model in DEFAULT[:-1]:
        assert f"{base}/{model.path}" in message  # trailing slash of the mirror dropped
        assert str(models / model.dest) in message
    assert present.path not in message  # files already in place are not listed
    assert not list(models.rglob("*.part"))
    assert (models / present.dest).read_text() == "already here"


def test_offline_pull_of_one_stage_lists_only_that_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ParleyError) as info:
        pull(tmp_path / "models", {"llm"})
    message = str(info.value)
    for model in REAL_MODELS:
        assert (model.path in message) == (model.stage == "llm"), model.path


def test_pull_from_a_mirror_downloads_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]]
) -> None:
    base, requests = mirror
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base)
    models = tmp_path / "home" / "models"

    fetched = pull(models)

    assert sorted(fetched) == sorted(models / m.dest for m in DEFAULT)
    for model in DEFAULT:
        assert (models / model.dest).read_bytes() == f"fake {model.dest}\n".encode() * 100
    assert sorted(requests) == sorted(f"/{m.path}" for m in DEFAULT)
    assert not list(models.rglob("*.part"))

    assert pull(models) == []  # everything is there: nothing downloaded again
    assert len(requests) == len(DEFAULT)

    # The pulled files are exactly what the `local` pipeline's pools point at.
    assert missing_models(config(tmp_path / "home"), "local") == []
    # The speech-emotion model is fetched on request, for the local-emotion pipeline.
    assert [p.name for p in missing_models(config(tmp_path / "home"), "local-emotion")] == [
        "model.onnx"
    ]
    emotion = pull(models, {"analyse"})
    assert sorted(p.name for p in emotion) == [
        "config.json", "model.onnx", "preprocessor_config.json"
    ]  # fmt: skip
    assert missing_models(config(tmp_path / "home"), "local-emotion") == []


def test_pull_only_some_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]]
) -> None:
    base, requests = mirror
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base)
    models = tmp_path / "models"
    fetched = pull(models, {"tts"})
    tts = [m for m in REAL_MODELS if m.stage == "tts"]
    assert sorted(fetched) == sorted(models / m.dest for m in tts)
    assert len(requests) == len(tts)
    assert not (models / "faster-whisper-base.en").exists()


def test_pull_reports_a_file_the_mirror_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]]
) -> None:
    base, _ = mirror
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base)
    (tmp_path / "mirror" / REAL_MODELS[0].path).unlink()
    with pytest.raises(ParleyError) as info:
        pull(tmp_path / "models", {"stt"})
    assert REAL_MODELS[0].path in str(info.value)
    assert not (tmp_path / "models" / REAL_MODELS[0].dest).exists()


# --------------------------------------------------------------------------- ensure


def test_real_model_paths_of_the_local_pipeline(tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert pipeline_model_paths(config(tmp_path), "local") == [
        models / "faster-whisper-base.en",
        models / "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        models / "en_US-lessac-medium.onnx",
    ]
    # Remote API pools name models, not files.
    assert pipeline_model_paths(config(tmp_path), "openai") == []
    assert missing_models(config(tmp_path), "openai") == []


def test_ensure_models_builds_the_tiny_models(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    tiny = tmp_path / "models" / "tiny"
    assert missing_models(cfg, "tiny") == [
        tiny / "whisper",
        tiny / "stories260K.gguf",
        tiny / "voice.onnx",
    ]
    ensure_models(cfg, "tiny")
    assert missing_models(cfg, "tiny") == []
    assert (tiny / "whisper").is_dir()
    assert (tiny / "stories260K.gguf").stat().st_size > 0
    ensure_models(cfg, "tiny")  # already built: nothing to do, no error


def test_ensure_models_asks_for_a_pull_for_real_models(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with pytest.raises(ParleyError) as info:
        ensure_models(cfg, "local")
    message = str(info.value)
    assert "parley models pull" in message
    assert "'local'" in message
    assert str(tmp_path / "models" / "faster-whisper-base.en") in message
    assert not (tmp_path / "models" / "tiny").exists()  # nothing built for `local`


def test_ensure_models_needs_nothing_for_remote_pipelines(tmp_path: Path) -> None:
    ensure_models(config(tmp_path), "openai")
    assert not (tmp_path / "models").exists()
