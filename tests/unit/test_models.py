"""`parley models`: pulling the real models (offline error, local mirror) and making sure
a pipeline's model files exist (tiny ones are built, real ones are asked for)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.commands import models as models_module
from parley.commands.models import (
    REAL_MODELS,
    ensure_models,
    file_problem,
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


def fake_bytes(model: models_module.ModelFile) -> bytes:
    return f"fake {model.dest}\n".encode() * 100


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP mirror laid out like the hub; yields (base URL, requested paths).
    The pinned files' size and sha256 become those of the mirror's fakes."""
    root = tmp_path / "mirror"
    pinned = []
    for model in REAL_MODELS:
        path = root / urllib.parse.unquote(model.path)  # as the URL's path reads
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fake_bytes(model))
        if model.sha256 is not None:
            digest = hashlib.sha256(fake_bytes(model)).hexdigest()
            model = dataclasses.replace(model, size=len(fake_bytes(model)), sha256=digest)
        pinned.append(model)
    monkeypatch.setattr(models_module, "REAL_MODELS", pinned)
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
    present = DEFAULT[-2]  # not pinned: any non-empty file counts as in place
    assert present.sha256 is None
    (models / present.dest).parent.mkdir(parents=True)
    (models / present.dest).write_text("already here")

    with pytest.raises(ParleyError) as info:
        pull(models)

    message = str(info.value)
    assert "looks offline" in message
    assert "PARLEY_MODELS_MIRROR" in message
    for model in (m for m in DEFAULT if m != present):
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


def turn_model() -> models_module.ModelFile:
    (model,) = (m for m in models_module.REAL_MODELS if m.stage == "turn")
    return model


def test_the_end_of_turn_model_is_pinned_by_size_and_sha256() -> None:
    model = turn_model()
    assert model.size == 8_679_182
    assert model.sha256 == "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"


def test_file_problem_names_what_is_wrong(tmp_path: Path) -> None:
    model = dataclasses.replace(turn_model(), size=5, sha256=hashlib.sha256(b"right").hexdigest())
    path = tmp_path / "model.onnx"
    assert file_problem(model, path) == "missing"
    path.write_bytes(b"")
    assert file_problem(model, path) == "empty"
    path.write_bytes(b"trunc" + b"ated")
    assert file_problem(model, path) == "9 bytes, expected 5"
    path.write_bytes(b"wrong")
    assert "sha256 " in (file_problem(model, path) or "")
    path.write_bytes(b"right")
    assert file_problem(model, path) is None


@pytest.mark.parametrize("content", [b"", b"truncated", b"same size"])
def test_pull_replaces_a_corrupt_end_of_turn_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mirror: tuple[str, list[str]],
    content: bytes,
) -> None:
    base, requests = mirror
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base)
    models = tmp_path / "models"
    dest = models / turn_model().dest
    dest.parent.mkdir(parents=True)
    if content == b"same size":
        content = b"x" * len(fake_bytes(turn_model()))
    dest.write_bytes(content)  # empty, cut short, or the right size but other bytes

    assert pull(models, {"turn"}) == [dest]

    assert dest.read_bytes() == fake_bytes(turn_model())
    assert requests == [f"/{turn_model().path}"]
    assert pull(models, {"turn"}) == []  # now it matches: kept


def test_pull_refuses_a_download_that_is_not_the_pinned_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]]
) -> None:
    base, _ = mirror
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", base)
    (tmp_path / "mirror" / turn_model().path).write_bytes(b"another version")
    models = tmp_path / "models"
    dest = models / turn_model().dest
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")

    with pytest.raises(ParleyError) as info:
        pull(models, {"turn"})

    message = str(info.value)
    assert turn_model().path in message and "not the expected file" in message
    assert "15 bytes, expected" in message
    assert dest.read_bytes() == b"old"  # nothing replaced
    assert not list(models.rglob("*.part"))


def test_pull_refuses_a_download_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)  # then the connection closes

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("PARLEY_MODELS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(ParleyError) as info:
            pull(tmp_path / "models", {"llm"})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert "stopped at 10 of 1000 bytes" in str(info.value)
    assert not list((tmp_path / "models").rglob("*"))  # no file, no .part


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


def test_ensure_models_says_a_pull_does_not_write_a_path_of_ones_own(tmp_path: Path) -> None:
    toml = tmp_path / "parley.toml"
    toml.write_text('[turn]\nstrategy = "smart_turn"\nmodel_path = "/x/nosuch.onnx"\n')
    cfg = load_config(toml, {"PARLEY_HOME": str(tmp_path)})
    with pytest.raises(ParleyError) as info:
        ensure_models(cfg, "tiny")
    assert str(info.value) == (
        "pipeline 'tiny': model files missing (/x/nosuch.onnx): `parley models pull` does "
        "not write /x/nosuch.onnx ([turn] model_path): copy smart-turn-v3.2-cpu.onnx there, "
        "or leave model_path empty for the one `parley models pull --only turn` fetches"
    )
    with pytest.raises(ParleyError) as info:
        ensure_models(cfg, "local")
    message = str(info.value)
    assert "and 2 more)" in message and ", ...)" not in message
    assert "run `parley models pull --only llm --only stt --only tts`" in message


def test_ensure_models_needs_nothing_for_remote_pipelines(tmp_path: Path) -> None:
    ensure_models(config(tmp_path), "openai")
    assert not (tmp_path / "models").exists()


# --------------------------------------------------------------------------- mirror


def test_a_mirror_may_be_a_plain_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, list[str]]
) -> None:
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", str(tmp_path / "mirror") + "/")
    models = tmp_path / "models"
    fetched = pull(models, {"turn"})
    assert fetched == [models / turn_model().dest]
    assert (models / turn_model().dest).read_bytes() == fake_bytes(turn_model())


def test_a_file_url_mirror_that_lacks_a_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", (tmp_path / "empty").as_uri())
    with pytest.raises(ParleyError, match=r"cannot read file://.* from the mirror"):
        pull(tmp_path / "models", {"turn"})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/no/such/mirror", "is not a directory"),
        ("ftp://example.org/models", "give an http://, https:// or file:// URL"),
        ("http://", "give an http://, https:// or file:// URL"),
        ("mirror:8000", "give an http://, https:// or file:// URL"),
    ],
)
def test_a_malformed_mirror_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("PARLEY_MODELS_MIRROR", value)
    with pytest.raises(ParleyError) as info:
        pull(tmp_path / "models", {"turn"})
    assert str(info.value).startswith(f"PARLEY_MODELS_MIRROR = {value!r}")
    assert problem in str(info.value)
    assert "\n" not in str(info.value)
