"""A folder of recordings plus a manifest, read into :class:`ManifestRow` rows.

Layouts (``layout="auto"`` picks one from the references file's name and columns, or
from the folder when no references file is given):

- ``table``: a TSV (``.tsv``/``.txt``) or CSV (``.csv``) file with a header row, or
  ``jsonl``: one JSON object per line. Columns (case-insensitive; aliases in brackets):
  ``file`` [path, audio, filename, wav] relative to the folder, or ``id`` [key,
  utterance_id] naming a recording in the folder by its path without extension;
  ``reference`` [transcript, text, sentence]; ``answer`` [reference_answer]; ``tags``
  (comma or semicolon separated, or a JSON list); ``conversation`` and ``position``
  [turn] for multi-turn items; ``frames``: JPEG files (``a.jpg;b.jpg``, each optionally
  ``@SECONDS`` into the recording; in JSONL a list of names or ``{"file", "offset_s"}``).
  Other columns are ignored. A folder exported by ``parley dataset export`` holds a
  ``manifest.jsonl`` that is found without ``--references``.
- ``librispeech``: ``*.trans.txt`` files (``UTTERANCE-ID TEXT`` per line) next to
  ``UTTERANCE-ID.flac`` recordings, anywhere below the folder.
- ``commonvoice``: a Common Voice ``*.tsv`` (columns ``client_id``, ``path``,
  ``sentence``); ``path`` is looked up in ``clips/`` first.
- ``folder``: no references: every audio file below the folder is an item.

Every error names the file and line it comes from (:class:`ManifestError`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from parley.errors import ParleyError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au")
LAYOUTS = ("auto", "table", "jsonl", "librispeech", "commonvoice", "folder")
EXPORT_MANIFEST = "manifest.jsonl"

_ALIASES = {
    "file": ("file", "path", "audio", "filename", "wav"),
    "id": ("id", "key", "utterance_id"),
    "reference": ("reference", "transcript", "text", "sentence", "reference_transcript"),
    "answer": ("answer", "reference_answer"),
    "tags": ("tags", "tag"),
    "conversation": ("conversation", "conversation_id"),
    "position": ("position", "turn", "conversation_position"),
    "frames": ("frames", "images"),
}


class ManifestError(ParleyError):
    """A manifest or folder that cannot be imported; the message names the row."""


@dataclass(frozen=True)
class FrameRef:
    path: Path
    offset_s: float | None = None  # seconds into the recording; None: its middle


@dataclass(frozen=True)
class ManifestRow:
    where: str  # "refs.tsv line 4": where the row came from, for error messages
    key: str  # the item's name, unique in the dataset
    audio: Path
    reference: str = ""
    answer: str = ""
    tags: tuple[str, ...] = ()
    conversation: str = ""
    position: int | None = None  # within the conversation; None: order of appearance
    frames: tuple[FrameRef, ...] = ()
    source_turn: str = ""


def read_folder(
    folder: Path, references: Path | None = None, layout: str = "auto"
) -> tuple[str, list[ManifestRow]]:
    """``(layout used, rows)`` for the recordings in ``folder``; raises ManifestError."""
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    if references is not None and not references.is_file():
        raise ManifestError(f"references file {references} not found")
    layout = _detect(folder, references) if layout == "auto" else layout
    if layout == "librispeech":
        files = [references] if references else sorted(folder.rglob("*.trans.txt"))
        rows = list(_librispeech(folder, files))
    elif layout == "folder":
        rows = [
            ManifestRow(str(path.relative_to(folder)), _key_of(path, folder), path)
            for path in _audio_files(folder)
        ]
    else:
        source = references or folder / EXPORT_MANIFEST
        records = _jsonl(source) if source.suffix in (".jsonl", ".json") else _table(source)
        rows = list(_rows(folder, source.name, records, layout == "commonvoice"))
    if not rows:
        raise ManifestError(f"no recordings found in {folder} ({layout} layout)")
    _check_unique(rows)
    return layout, rows


def _detect(folder: Path, references: Path | None) -> str:
    if references is None:
        if (folder / EXPORT_MANIFEST).is_file():
            return "jsonl"
        return "librispeech" if next(folder.rglob("*.trans.txt"), None) else "folder"
    if references.name.endswith(".trans.txt"):
        return "librispeech"
    if references.suffix in (".jsonl", ".json"):
        return "jsonl"
    with references.open(newline="", encoding="utf-8-sig") as fh:
        header = {c.strip().lower() for c in fh.readline().split("\t")}
    return "commonvoice" if {"client_id", "path", "sentence"} <= header else "table"


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
    )


def _key_of(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def _table(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        if not reader.fieldnames:
            raise ManifestError(f"{path.name}: empty file (expected a header row)")
        for record in reader:
            yield (
                f"{path.name} line {reader.line_num}",
                {(k or "").strip().lower(): v for k, v in record.items()},
            )


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: expected a JSON object")
            yield where, {str(k).lower(): v for k, v in record.items()}


def _field(record: Mapping[str, Any], name: str) -> Any:
    for alias in _ALIASES[name]:
        value = record.get(alias)
        if value not in (None, ""):
            return value
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _rows(
    folder: Path, source: str, records: Iterable[tuple[str, dict[str, Any]]], common_voice: bool
) -> Iterator[ManifestRow]:
    by_key: dict[str, list[Path]] | None = None
    for where, record in records:
        name, key = _text(_field(record, "file")), _text(_field(record, "id"))
        if name:
            audio = _resolve(folder, name, where, common_voice)
            key = key or PurePosixPath(name.replace("\\", "/")).with_suffix("").as_posix()
        elif key:
            if by_key is None:
                by_key = _index(folder)
            found = by_key.get(key, [])
            if len(found) != 1:
                problem = "no audio file" if not found else f"{len(found)} audio files"
                raise ManifestError(
                    f"{where}: reference for an unknown item {key!r}: {problem} named "
                    f"{key}.* in {folder}"
                )
            audio = found[0]
        else:
            raise ManifestError(
                f"{where}: no file or id (columns: file, path or audio; or id); {source} "
                "needs one of them per row"
            )
        yield ManifestRow(
            where=where,
            key=_check_key(key, where),
            audio=audio,
            reference=_text(_field(record, "reference")),
            answer=_text(_field(record, "answer")),
            tags=_tags(_field(record, "tags")),
            conversation=_text(_field(record, "conversation")),
            position=_position(_field(record, "position"), where),
            frames=_frames(folder, _field(record, "frames"), where),
        )


def _index(folder: Path) -> dict[str, list[Path]]:
    """Audio files by their path without extension and by their bare stem."""
    index: dict[str, list[Path]] = {}
    for path in _audio_files(folder):
        for name in {_key_of(path, folder), path.stem}:
            index.setdefault(name, []).append(path)
    return index


def _resolve(folder: Path, name: str, where: str, common_voice: bool) -> Path:
    candidates = [folder / "clips" / name] if common_voice else []
    candidates.append(folder / name)
    for path in candidates:
        if path.is_file():
            return path
    looked = " or ".join(str(p.relative_to(folder)) for p in candidates)
    raise ManifestError(f"{where}: audio file {looked} not found in {folder}")


def _check_key(key: str, where: str) -> str:
    parts = PurePosixPath(key).parts
    if len(key) > 255 or key.startswith("/") or ".." in parts or "\x00" in key or "\\" in key:
        raise ManifestError(f"{where}: bad item id {key!r} (a relative name without '..')")
    return key


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    return tuple(dict.fromkeys(t for t in (_text(i) for i in items) if t))


def _position(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        position = int(str(value).strip())
    except ValueError:
        raise ManifestError(f"{where}: position {value!r} is not a whole number") from None
    if position < 0:
        raise ManifestError(f"{where}: position {position} is negative")
    return position


def _frames(folder: Path, value: Any, where: str) -> tuple[FrameRef, ...]:
    if value is None:
        return ()
    entries: list[Any] = value if isinstance(value, list) else str(value).split(";")
    frames = []
    for entry in entries:
        offset: Any = None
        if isinstance(entry, dict):
            name, offset = _text(entry.get("file") or entry.get("path")), entry.get("offset_s")
        else:
            name, _, at = str(entry).strip().partition("@")
            offset = at or None
        if not name:
            continue
        path = folder / name
        if not path.is_file():
            raise ManifestError(f"{where}: frame {name} not found in {folder}")
        try:
            seconds = None if offset is None else float(offset)
        except ValueError:
            raise ManifestError(f"{where}: frame offset {offset!r} is not a number") from None
        frames.append(FrameRef(path, seconds))
    return tuple(frames)


def _librispeech(folder: Path, files: list[Path]) -> Iterator[ManifestRow]:
    for transcript in files:
        with transcript.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{transcript.name} line {number}"
                key, _, text = line.strip().partition(" ")
                found = [transcript.with_name(key + s) for s in (".flac", ".wav")]
                audio = next((p for p in found if p.is_file()), None)
                if audio is None:
                    raise ManifestError(
                        f"{where}: reference for an unknown item {key!r}: no {key}.flac "
                        f"next to {transcript.relative_to(folder)}"
                    )
                yield ManifestRow(where, _check_key(key, where), audio, reference=text.strip())


def _check_unique(rows: list[ManifestRow]) -> None:
    seen: dict[str, str] = {}
    places: dict[tuple[str, int], str] = {}
    for row in rows:
        if row.key in seen:
            raise ManifestError(f"{row.where}: item {row.key!r} is also at {seen[row.key]}")
        seen[row.key] = row.where
        if row.conversation and row.position is not None:
            place = (row.conversation, row.position)
            if place in places:
                raise ManifestError(
                    f"{row.where}: conversation {row.conversation!r} position {row.position} "
                    f"is also at {places[place]}"
                )
            places[place] = row.where
