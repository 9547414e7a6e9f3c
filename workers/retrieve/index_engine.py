"""The ``index`` retrieve engine: the passages of an index built by ``parley index
build`` nearest to a query, embedded by the same embedder that built the index (read
from the index's record)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from workers.errors import EngineError
from workers.kinds import Passage, RetrieveRequest
from workers.retrieve.embedders import LlamaCppEmbedder, OpenAIEmbedder, make_embedder
from workers.retrieve.vector_stores import PgvectorStore, SqliteVecStore, open_store

log = logging.getLogger(__name__)


class IndexRetriever:
    """``index``: the SQLite index file (``{home}/indexes/NAME.sqlite`` from ``parley
    index build NAME DIR``), or the index's name with ``database_url`` set to a
    postgresql:// URL (pgvector); ``top_k``: passages returned (default 3);
    ``min_score``: passages less similar are left out (default 0: none)."""

    def __init__(
        self, index: str, database_url: str = "", top_k: int = 3, min_score: float = 0.0
    ) -> None:
        self.index, self.database_url = index, database_url
        self.top_k, self.min_score = int(top_k), float(min_score)
        self.model = Path(index).stem if not database_url else index
        self._store: SqliteVecStore | PgvectorStore | None = None
        self._embedder: LlamaCppEmbedder | OpenAIEmbedder | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        store = open_store(self.index, self.database_url)
        meta = store.meta()
        self._embedder = make_embedder(meta["embedder"])
        self._store = store
        log.info("index %s: %d passages, embedder %s", self.index, store.count(), meta["embedder"])

    def _search(self, query: str, k: int) -> list[Passage]:
        if self._store is None or self._embedder is None:
            raise EngineError("IndexRetriever.run() before load()")
        with self._lock:
            vector = self._embedder.embed([query])[0]
            hits = self._store.nearest(vector, k)
        return [
            Passage(chunk.text, chunk.source, chunk.position, score)
            for chunk, score in hits
            if score >= self.min_score
        ]

    async def run(self, request: RetrieveRequest) -> list[Passage]:
        return await asyncio.to_thread(self._search, request.query, request.top_k or self.top_k)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._embedder is not None:
            self._embedder.close()
        self._store = self._embedder = None
