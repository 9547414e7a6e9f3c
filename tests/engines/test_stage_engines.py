"""The engines of the newer stage kinds, for real: the ONNX audio classifier on the
tiny speech-emotion model, chunking, the retrieval index (llama.cpp embeddings of the
bundled GGUF, sqlite-vec; pgvector where PostgreSQL has the extension), and the vision
options of the llama.cpp engines."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from parley.commands import index as index_command
from parley.config import load_config
from workers.engines import LlmRequest, Message, TextDelta, create_engine
from workers.errors import InvalidRequest, ModelNotFound
from workers.kinds import AnalyseRequest, CaptionRequest, RetrieveRequest
from workers.retrieve.chunking import chunk_folder, chunk_text

pytestmark = pytest.mark.slow

DOCS = {
    "lamp.md": "# The living room\n\nThe lamp in the living room turns on when you press the "
    "switch by the door. It has a warm white bulb.\n",
    "cake.txt": "Lily baked a chocolate cake for her mother's birthday party. Everyone sang.\n",
    "notes/fox.rst": "The red fox jumped over the fence and ran into the forest.\n",
    "image.png": "not a document",
}


def tone(seconds: float, hz: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def test_emotion_classifier_on_the_tiny_model(tiny_models: dict[str, Path]) -> None:
    engine = create_engine("analyse", "onnx_audio", {"model": str(tiny_models["emotion"])})
    engine.load()
    assert engine.labels == ["neutral", "happy", "sad", "angry"]  # from config.json

    async def labels(pcm: bytes) -> list[tuple[str, float]]:
        return [(x.label, x.score) for x in await engine.run(AnalyseRequest(audio=pcm))]

    low, high = asyncio.run(labels(tone(1.0, 150))), asyncio.run(labels(tone(1.0, 3000)))
    assert sum(score for _, score in low) == pytest.approx(1.0)
    assert [s for _, s in low] == sorted((s for _, s in low), reverse=True)
    assert low != high  # the scores depend on the audio
    assert asyncio.run(labels(tone(1.0, 150))) == low  # and only on it
    with pytest.raises(InvalidRequest, match="takes audio, not text"):
        asyncio.run(engine.run(AnalyseRequest(text="hello")))
    with pytest.raises(InvalidRequest, match="8000 Hz"):
        asyncio.run(engine.run(AnalyseRequest(audio=tone(1.0, 150, 8000), sample_rate=8000)))
    with pytest.raises(InvalidRequest, match="too little audio"):
        asyncio.run(engine.run(AnalyseRequest(audio=b"\x00\x01" * 10)))
    engine.close()


def test_emotion_classifier_refuses_missing_or_mismatched_models(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    missing = create_engine("analyse", "onnx_audio", {"model": str(tmp_path / "none.onnx")})
    with pytest.raises(ModelNotFound, match="parley models pull --only analyse"):
        missing.load()
    folder = tmp_path / "copy"
    shutil.copytree(tiny_models["emotion"].parent, folder)
    wrong = create_engine(
        "analyse", "onnx_audio", {"model": str(folder / "model.onnx"), "labels": "a,b"}
    )
    with pytest.raises(ModelNotFound, match="4 scores but 2 labels"):
        wrong.load()
    voice = create_engine("analyse", "onnx_audio", {"model": str(tiny_models["voice"])})
    with pytest.raises(ModelNotFound, match="not an audio classifier"):
        voice.load()


def test_chunks_pack_sentences_with_overlap(tmp_path: Path) -> None:
    text = "One is here. Two is there. Three is everywhere.\n\nFour starts a paragraph."
    assert list(chunk_text(text, max_chars=40, overlap=1)) == [
        "One is here. Two is there.",
        "Two is there. Three is everywhere.",  # the last sentence carried over
        "Four starts a paragraph.",  # with the carried one it would not fit
    ]
    assert list(chunk_text(text, max_chars=40, overlap=0))[1] == "Three is everywhere."
    assert list(chunk_text("", max_chars=30)) == []
    for name, body in DOCS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    found = chunk_folder(tmp_path)
    assert sorted({c.source for c in found}) == ["cake.txt", "lamp.md", "notes/fox.rst"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no text documents"):
        chunk_folder(tmp_path / "empty")


def build(tmp_path: Path, gguf: Path, database_url: str = "") -> tuple[argparse.Namespace, object]:
    folder = tmp_path / "docs"
    for name, body in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(body)
    config = load_config(env={"PARLEY_HOME": str(tmp_path / "home")})
    args = argparse.Namespace(
        name="docs", folder=str(folder), embedder="llama_cpp", model=str(gguf), pooling="mean",
        base_url=None, chunk_chars=800, overlap=1, database_url=database_url, top_k=3,
        text="How do I turn on the lamp in the living room?", json=False,
    )  # fmt: skip
    summary = index_command.build(args, config)
    assert (summary["documents"], summary["chunks"], summary["dimensions"]) == (3, 3, 64)
    return args, config


def test_retrieval_with_llama_cpp_embeddings_finds_the_right_passage_first(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("sqlite_vec")
    args, config = build(tmp_path, tiny_models["gguf"])
    hits = index_command.query(args, config)
    assert hits[0]["source"] == "lamp.md" and len(hits) == 3
    assert hits[0]["score"] > hits[1]["score"] >= hits[2]["score"]
    # The engine a retrieve worker runs reads the embedder from the index itself.
    engine = create_engine(
        "retrieve", "index", {"index": str(tmp_path / "home" / "indexes" / "docs.sqlite")}
    )
    engine.load()
    passages = asyncio.run(engine.run(RetrieveRequest(args.text, top_k=1)))
    engine.close()
    assert [(p.source, p.chunk) for p in passages] == [("lamp.md", 0)]
    assert "press the switch by the door" in passages[0].text


def test_a_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("sqlite_vec")
    engine = create_engine("retrieve", "index", {"index": str(tmp_path / "nope.sqlite")})
    with pytest.raises(ModelNotFound, match="parley index build"):
        engine.load()


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres_with_pgvector(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (on a unix socket in tmp_path) whose server has
    the pgvector extension; skips with the reason when PostgreSQL or the extension is
    not installed (Debian: postgresql-NN-pgvector)."""
    pytest.importorskip("psycopg2")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL (initdb) is not installed")
    share = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    shares = [Path(share)] if share else []
    shares.append(Path("/usr/share/postgresql") / bindir.parent.name)
    if not any((p / "extension" / "vector.control").exists() for p in shares):
        pytest.skip("the pgvector extension is not installed for this PostgreSQL")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data, sockets = tmp_path / "pg", tmp_path / "sock"
    sockets.mkdir()
    if as_user:
        shutil.chown(tmp_path, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-k {sockets} -c listen_addresses=''"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                    "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@/postgres?host={sockets}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True)  # fmt: skip


def test_retrieval_on_pgvector(
    postgres_with_pgvector: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    args, config = build(tmp_path / "build", tiny_models["gguf"], postgres_with_pgvector)
    hits = index_command.query(args, config)
    assert hits[0]["source"] == "lamp.md" and len(hits) == 3
    assert hits[0]["score"] > hits[1]["score"]


DATA = Path(__file__).resolve().parents[1] / "data"


def test_local_vision_through_a_multimodal_chat_handler(tiny_models: dict[str, Path]) -> None:
    """stories260K with the tiny projector on llama-cpp-python's Llava15ChatHandler:
    the image is encoded and its embeddings decoded with the prompt, so each image
    gives its own (nonsense) caption, and the same image the same one."""
    options = {"model": str(tiny_models["gguf"]), "clip_model": str(tiny_models["projector"]),
               "n_ctx": 512, "seed": 1, "temperature": 0.0}  # fmt: skip
    caption = create_engine("caption", "llama_cpp", options)
    caption.load()
    frames = [(DATA / "frames" / name).read_bytes() for name in ("frame-a.jpg", "frame-b.jpg")]

    def describe(jpeg: bytes) -> str:
        return asyncio.run(caption.run(CaptionRequest(jpeg, max_tokens=12)))

    a, b = describe(frames[0]), describe(frames[1])
    caption.close()
    assert a and b and a != b
    assert describe_again(options, frames[0]) == a
    # The llm engine with the same projector sees the frame of a vision pipeline.
    llm = create_engine(
        "llm", "llama_cpp", {k: v for k, v in options.items() if k != "temperature"}
    )
    llm.load()
    request = LlmRequest((Message("user", "What is this?", (frames[1],)),), 0.0, 12)
    seen = "".join(d.text for d in asyncio.run(collect(llm.run(request))))
    blind = LlmRequest((Message("user", "What is this?"),), 0.0, 12)
    unseen = "".join(d.text for d in asyncio.run(collect(llm.run(blind))))
    llm.close()
    assert seen and seen != unseen


def describe_again(options: dict[str, object], jpeg: bytes) -> str:
    engine = create_engine("caption", "llama_cpp", options)
    engine.load()
    try:
        return asyncio.run(engine.run(CaptionRequest(jpeg, max_tokens=12)))
    finally:
        engine.close()


async def collect(stream: AsyncIterator[TextDelta]) -> list[TextDelta]:
    return [delta async for delta in stream]


def test_llama_cpp_vision_needs_its_projector(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    llm = create_engine(
        "llm", "llama_cpp",
        {"model": str(tiny_models["gguf"]), "clip_model": str(tmp_path / "mmproj.gguf")},
    )  # fmt: skip
    with pytest.raises(ModelNotFound, match="projector"):
        llm.load()
    with pytest.raises(InvalidRequest, match="needs clip_model"):
        create_engine("caption", "llama_cpp", {"model": str(tiny_models["gguf"])})
    odd = create_engine(
        "caption", "llama_cpp",
        {"model": str(tiny_models["gguf"]), "clip_model": str(tiny_models["gguf"]),
         "chat_handler": "nonesuch"},
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="unknown chat_handler 'nonesuch'"):
        odd.load()
