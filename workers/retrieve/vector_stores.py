"""Where a retrieval index lives: an SQLite file with the sqlite-vec extension (the
default, embedded), or PostgreSQL with the pgvector extension.

Both hold the same things: the index's record (``meta``: the embedder that built it,
the chunking, the folder), and each chunk (source document, position, text) with its
embedding; a query returns the ``k`` chunks nearest by cosine distance, scored as
cosine similarity (1 - distance).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from workers.errors import EngineUnavailable, MissingExtra, ModelNotFound
from workers.retrieve.chunking import Chunk

Hit = tuple[Chunk, float]  # a chunk and its cosine similarity


class VectorStore(Protocol):
    def create(self, meta: dict[str, Any], dimensions: int) -> None:
        """Start the index afresh (an existing one of this name is replaced)."""
        ...

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def meta(self) -> dict[str, Any]:
        """The record given to :meth:`create` (ModelNotFound when there is no index)."""
        ...

    def nearest(self, vector: np.ndarray, k: int) -> list[Hit]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


def sqlite_module() -> ModuleType:
    """An sqlite3 module that can load extensions: the standard library's when its
    SQLite was built with that, else sqlean.py's (the ``rag`` extra)."""
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import sqlean  # type: ignore[import-untyped]
    except ModuleNotFoundError as exc:
        raise MissingExtra("sqlean.py", "rag") from exc
    return sqlean  # type: ignore[no-any-return]


class SqliteVecStore:
    """An index in one SQLite file (``path``), searched with sqlite-vec's ``vec0``."""

    def __init__(self, path: Path) -> None:
        try:
            import sqlite_vec
        except ModuleNotFoundError as exc:
            raise MissingExtra("sqlite-vec", "rag") from exc
        self.path = path
        self._serialize = sqlite_vec.serialize_float32
        self._db: Any = None
        self._sqlite_vec = sqlite_vec

    @property
    def db(self) -> Any:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_module().connect(str(self.path), check_same_thread=False)
            db.enable_load_extension(True)
            self._sqlite_vec.load(db)
            db.enable_load_extension(False)
            self._db = db
        return self._db

    def create(self, meta: dict[str, Any], dimensions: int) -> None:
        with self.db as db:
            db.executescript(
                "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS chunk; "
                "DROP TABLE IF EXISTS chunk_vec;"
            )
            db.execute("CREATE TABLE meta (value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE chunk (id INTEGER PRIMARY KEY, source TEXT NOT NULL, "
                "position INTEGER NOT NULL, text TEXT NOT NULL)"
            )
            db.execute(
                f"CREATE VIRTUAL TABLE chunk_vec USING vec0("
                f"embedding float[{int(dimensions)}] distance_metric=cosine)"
            )
            db.execute("INSERT INTO meta (value) VALUES (?)", (json.dumps(meta),))

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        with self.db as db:
            start = db.execute("SELECT COALESCE(MAX(id), 0) FROM chunk").fetchone()[0] + 1
            for offset, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
                row = start + offset
                db.execute(
                    "INSERT INTO chunk (id, source, position, text) VALUES (?, ?, ?, ?)",
                    (row, chunk.source, chunk.position, chunk.text),
                )
                db.execute(
                    "INSERT INTO chunk_vec (rowid, embedding) VALUES (?, ?)",
                    (row, self._serialize(vector.tolist())),
                )

    def meta(self) -> dict[str, Any]:
        if not self.path.is_file():
            raise ModelNotFound(f"no index at {self.path}: run `parley index build`")
        try:
            (value,) = self.db.execute("SELECT value FROM meta").fetchone()
        except Exception as exc:
            raise ModelNotFound(f"{self.path} is not a Parley index: {exc}") from exc
        return dict(json.loads(value))

    def nearest(self, vector: np.ndarray, k: int) -> list[Hit]:
        rows = self.db.execute(
            "SELECT c.source, c.position, c.text, v.distance FROM chunk_vec v "
            "JOIN chunk c ON c.id = v.rowid WHERE v.embedding MATCH ? AND k = ? "
            "ORDER BY v.distance",
            (self._serialize(vector.tolist()), int(k)),
        ).fetchall()
        return [(Chunk(s, p, t), 1.0 - float(d)) for s, p, t, d in rows]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunk").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class PgvectorStore:
    """An index in PostgreSQL (``url``: postgresql://...) with the pgvector extension:
    one row per index in ``parley_index``, its chunks in ``parley_index_chunk``."""

    def __init__(self, url: str, name: str) -> None:
        try:
            import psycopg2
        except ModuleNotFoundError as exc:
            raise MissingExtra("psycopg2-binary", "postgres") from exc
        self.url, self.name = url, name
        try:
            self._db = psycopg2.connect(url)
        except psycopg2.Error as exc:
            raise EngineUnavailable(f"cannot connect to {url.split('@')[-1]}: {exc}") from exc

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._db, self._db.cursor() as cursor:
            cursor.execute(sql, tuple(args))
            return list(cursor.fetchall()) if cursor.description else []

    def create(self, meta: dict[str, Any], dimensions: int) -> None:
        import psycopg2

        try:
            self._execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg2.Error as exc:
            raise EngineUnavailable(
                f"the pgvector extension is not available on this server: {exc}"
            ) from exc
        self._execute(
            "CREATE TABLE IF NOT EXISTS parley_index (name TEXT PRIMARY KEY, meta TEXT NOT NULL)"
        )
        self._execute(
            "CREATE TABLE IF NOT EXISTS parley_index_chunk (index_name TEXT NOT NULL, "
            "id SERIAL, source TEXT NOT NULL, position INTEGER NOT NULL, text TEXT NOT NULL, "
            "embedding vector NOT NULL, PRIMARY KEY (index_name, id))"
        )
        self._execute("DELETE FROM parley_index_chunk WHERE index_name = %s", [self.name])
        self._execute("DELETE FROM parley_index WHERE name = %s", [self.name])
        self._execute(
            "INSERT INTO parley_index (name, meta) VALUES (%s, %s)",
            [self.name, json.dumps({**meta, "dimensions": dimensions})],
        )

    @staticmethod
    def _literal(vector: np.ndarray) -> str:
        return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        for chunk, vector in zip(chunks, vectors, strict=True):
            self._execute(
                "INSERT INTO parley_index_chunk (index_name, source, position, text, embedding) "
                "VALUES (%s, %s, %s, %s, %s::vector)",
                [self.name, chunk.source, chunk.position, chunk.text, self._literal(vector)],
            )

    def meta(self) -> dict[str, Any]:
        import psycopg2

        try:
            rows = self._execute("SELECT meta FROM parley_index WHERE name = %s", [self.name])
        except psycopg2.Error as exc:
            raise ModelNotFound(f"no index {self.name!r} in PostgreSQL: {exc}") from exc
        if not rows:
            raise ModelNotFound(f"no index {self.name!r} in PostgreSQL: run `parley index build`")
        return dict(json.loads(rows[0][0]))

    def nearest(self, vector: np.ndarray, k: int) -> list[Hit]:
        rows = self._execute(
            "SELECT source, position, text, embedding <=> %s::vector AS distance "
            "FROM parley_index_chunk WHERE index_name = %s ORDER BY distance LIMIT %s",
            [self._literal(vector), self.name, int(k)],
        )
        return [(Chunk(s, p, t), 1.0 - float(d)) for s, p, t, d in rows]

    def count(self) -> int:
        rows = self._execute(
            "SELECT COUNT(*) FROM parley_index_chunk WHERE index_name = %s", [self.name]
        )
        return int(rows[0][0])

    def close(self) -> None:
        self._db.close()


def open_store(index: str, database_url: str = "") -> SqliteVecStore | PgvectorStore:
    """``database_url`` postgresql://...: the index named ``index`` there; else
    ``index`` is the path of an SQLite index file."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return PgvectorStore(database_url, index)
    return SqliteVecStore(Path(index).expanduser())
