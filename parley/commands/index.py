"""`parley index`: build a retrieval index from a folder of documents, list and query
indexes (the ``retrieve`` stage's ``index`` engine reads them)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from parley.config import Config
from parley.errors import ParleyError


def index_path(config: Config, name: str) -> Path:
    """Where ``parley index build NAME`` writes an SQLite index."""
    return config.home / "indexes" / f"{name}.sqlite"


def _embedder_spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.embedder == "llama_cpp":
        if not args.model:
            raise ParleyError("--embedder llama_cpp needs --model PATH.gguf")
        return {"engine": "llama_cpp", "model": str(Path(args.model).expanduser().resolve()),
                "pooling": args.pooling}  # fmt: skip
    return {"engine": "openai", "model": args.model or "text-embedding-3-small",
            "base_url": args.base_url or ""}  # fmt: skip


def build(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    """Chunk, embed and store ``args.folder`` as index ``args.name``; a summary."""
    from workers.errors import EngineError
    from workers.retrieve.chunking import chunk_folder
    from workers.retrieve.embedders import make_embedder
    from workers.retrieve.vector_stores import open_store

    folder = Path(args.folder).expanduser().resolve()
    if not folder.is_dir():
        raise ParleyError(f"{folder} is not a folder")
    started = time.perf_counter()
    try:
        chunks = chunk_folder(folder, max_chars=args.chunk_chars, overlap=args.overlap)
    except ValueError as exc:
        raise ParleyError(str(exc)) from None
    spec = _embedder_spec(args)
    target = args.name if args.database_url else str(index_path(config, args.name))
    try:
        embedder = make_embedder(spec)
        store = open_store(target, args.database_url or "")
        try:
            vectors = embedder.embed([c.text for c in chunks])
            meta = {"name": args.name, "folder": str(folder), "embedder": embedder.describe(),
                    "chunk_chars": args.chunk_chars, "overlap": args.overlap,
                    "built_at": time.time()}  # fmt: skip
            store.create(meta, int(vectors.shape[1]))
            store.add(chunks, vectors)
        finally:
            store.close()
            embedder.close()
    except EngineError as exc:
        raise ParleyError(str(exc)) from None
    return {
        "index": target,
        "documents": len({c.source for c in chunks}),
        "chunks": len(chunks),
        "dimensions": int(vectors.shape[1]),
        "seconds": round(time.perf_counter() - started, 3),
    }


def query(args: argparse.Namespace, config: Config) -> list[dict[str, Any]]:
    import asyncio

    from workers.errors import EngineError
    from workers.kinds import RetrieveRequest
    from workers.retrieve.index_engine import IndexRetriever

    target = args.name if args.database_url else str(index_path(config, args.name))
    engine = IndexRetriever(target, args.database_url or "", top_k=args.top_k)
    try:
        engine.load()
        passages = asyncio.run(engine.run(RetrieveRequest(args.text)))
    except EngineError as exc:
        raise ParleyError(str(exc)) from None
    finally:
        engine.close()
    return [{"score": round(p.score, 4), "source": p.source, "chunk": p.chunk, "text": p.text}
            for p in passages]  # fmt: skip


def run_index(args: argparse.Namespace, config: Config) -> int:
    if args.index_command == "build":
        summary = build(args, config)
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"index {args.name}: {summary['chunks']} passages from {summary['documents']} "
                f"documents ({summary['dimensions']} dimensions) in {summary['index']}"
            )
    elif args.index_command == "query":
        hits = query(args, config)
        if args.json:
            print(json.dumps(hits))
        for hit in [] if args.json else hits:
            print(f"{hit['score']:.3f}  {hit['source']}#{hit['chunk']}  {hit['text'][:100]}")
    else:
        folder = config.home / "indexes"
        for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
            print(f"{path.stem:20s} {path}")
    return 0
