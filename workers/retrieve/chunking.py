"""Cut a folder of documents into passages for a retrieval index.

A document is read as UTF-8 text (``.txt``, ``.md``, ``.markdown``, ``.rst``; other
files are skipped), split into paragraphs at blank lines, and each paragraph into
sentences with pysbd (the speech-text stage's segmenter); sentences are packed into
chunks of at most ``max_chars`` characters, each chunk starting with the last
``overlap`` sentences of the one before (so a fact cut at a boundary is still found
whole). A sentence longer than ``max_chars`` is a chunk of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
_PARAGRAPHS = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    source: str  # path relative to the indexed folder
    position: int  # 0, 1, ... within the document
    text: str


def documents(folder: Path) -> list[Path]:
    """The text documents below ``folder``, in path order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)


def _sentences(paragraph: str, language: str) -> list[str]:
    import pysbd

    segmenter = pysbd.Segmenter(language=language, clean=False)
    return [s.strip() for s in segmenter.segment(" ".join(paragraph.split())) if s.strip()]


def chunk_text(
    text: str, *, max_chars: int = 800, overlap: int = 1, language: str = "en"
) -> Iterator[str]:
    """The chunks of one document's text."""
    sentences = [s for p in _PARAGRAPHS.split(text) for s in _sentences(p, language)]
    current: list[str] = []
    fresh = 0  # sentences in ``current`` not carried over from the last chunk
    for sentence in sentences:
        if current and len(" ".join([*current, sentence])) > max_chars:
            if fresh:
                yield " ".join(current)
            current = current[-overlap:] if overlap > 0 else []
            fresh = 0
            if current and len(" ".join([*current, sentence])) > max_chars:
                current = []
        current.append(sentence)
        fresh += 1
    if fresh:
        yield " ".join(current)


def chunk_folder(
    folder: Path, *, max_chars: int = 800, overlap: int = 1, language: str = "en"
) -> list[Chunk]:
    """Every chunk of every document below ``folder``. ValueError when it holds none."""
    chunks = []
    for path in documents(folder):
        text = path.read_text(encoding="utf-8", errors="replace")
        relative = path.relative_to(folder).as_posix()
        for i, piece in enumerate(
            chunk_text(text, max_chars=max_chars, overlap=overlap, language=language)
        ):
            chunks.append(Chunk(relative, i, piece))
    if not chunks:
        raise ValueError(f"no text documents ({', '.join(TEXT_SUFFIXES)}) in {folder}")
    return chunks
