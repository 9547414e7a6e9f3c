"""Text embeddings for retrieval: llama.cpp in embedding mode on a GGUF, or any
OpenAI-compatible ``/v1/embeddings`` endpoint. Vectors are L2-normalised, so cosine
similarity is their dot product.

An index records the embedder that built it (:meth:`Embedder.describe`), and the
retriever makes the same one from that record (:func:`make_embedder`), so queries and
passages are always embedded alike.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workers.errors import InvalidRequest, MissingExtra, ModelNotFound


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dimensions], each row of unit length (blocking)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What rebuilds this embedder (no secrets): ``{"engine": ..., ...}``."""
        ...


def _normalised(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"embeddings of shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


_POOLING = {"mean": 1, "cls": 2, "last": 3, "model": -1}  # llama.cpp's pooling types


class LlamaCppEmbedder:
    """A GGUF in llama.cpp's embedding mode. ``pooling``: how token vectors become one
    (``mean``, ``cls``, ``last``, or ``model``: the GGUF's own)."""

    def __init__(self, model: str, pooling: str = "mean", n_ctx: int = 512, n_threads: int = 0):
        if pooling not in _POOLING:
            raise InvalidRequest(f"pooling must be one of {', '.join(_POOLING)}, not {pooling!r}")
        self.model, self.pooling, self.n_ctx, self.n_threads = model, pooling, n_ctx, n_threads
        try:
            import llama_cpp
        except ModuleNotFoundError as exc:
            raise MissingExtra("llama-cpp-python", "rag") from exc  # (also in [llm])
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"embedding model {path} does not exist")
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=_POOLING[pooling],
                n_ctx=n_ctx,
                n_threads=n_threads or None,
                verbose=False,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotFound(f"cannot load embedding model {path}: {exc}") from exc
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _normalised(self._llama.embed(list(texts)))

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "llama_cpp",
            "model": self.model,
            "pooling": self.pooling,
            "n_ctx": self.n_ctx,
        }

    def close(self) -> None:
        self._llama.close()


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` (OpenAI, llama-server, vLLM, Ollama...);
    the key is ``api_key``, else $OPENAI_API_KEY (never recorded in the index)."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        batch: int = 64,
    ) -> None:
        try:
            import openai
        except ModuleNotFoundError as exc:
            raise MissingExtra("openai", "rag") from exc
        import os

        from workers.openai_client import NO_KEY

        key = api_key or os.environ.get("OPENAI_API_KEY") or (NO_KEY if base_url else None)
        if key is None:
            raise InvalidRequest("no OpenAI API key: set OPENAI_API_KEY or base_url")
        self.model, self.base_url, self.batch = model, base_url, batch
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from workers.openai_client import openai_errors

        rows: list[list[float]] = []
        with openai_errors(f"embeddings model {self.model!r}"):
            for start in range(0, len(texts), self.batch):
                reply = self._client.embeddings.create(
                    model=self.model, input=list(texts[start : start + self.batch])
                )
                rows += [item.embedding for item in sorted(reply.data, key=lambda d: d.index)]
        return _normalised(rows)

    def describe(self) -> dict[str, Any]:
        return {"engine": "openai", "model": self.model, "base_url": self.base_url or ""}

    def close(self) -> None:
        self._client.close()


def make_embedder(spec: Mapping[str, Any]) -> LlamaCppEmbedder | OpenAIEmbedder:
    """The embedder ``spec`` describes (``engine`` plus that engine's options)."""
    options = {k: v for k, v in spec.items() if k != "engine" and v not in ("", None)}
    engine = spec.get("engine")
    try:
        if engine == "llama_cpp":
            return LlamaCppEmbedder(**options)
        if engine == "openai":
            return OpenAIEmbedder(**options)
    except TypeError as exc:
        raise InvalidRequest(f"bad options for the {engine} embedder: {exc}") from exc
    raise InvalidRequest(f"unknown embedder {engine!r}; expected llama_cpp or openai")
