"""Manifest rows -> a new dataset version, all or nothing.

1. every row is checked before anything is written: the recording opens (libsndfile:
   WAV, FLAC, OGG/Opus, MP3, ...), has a format the edge can stream (4-384 kHz, 1-8
   channels), is not empty; frames are JPEG files;
2. recordings are decoded and written as PCM16 WAV files (their own rate and channels)
   into a staging folder, away from the database (a big import never holds the store's
   write lock while decoding);
3. one transaction inserts the dataset and its items and moves the staging folder to
   ``<data>/datasets/<name>/v<version>/``.

Any error names the row and leaves neither rows nor files behind.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley import db
from parley.audio import AudioFormatError, check_format, write_wav
from parley.errors import ParleyError
from research.manifests import ManifestError, ManifestRow

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
JPEG_MAGIC = b"\xff\xd8\xff"


class DatasetExists(ParleyError):
    """A dataset of that name exists and no new version was asked for."""


@dataclass(frozen=True)
class Probed:
    row: ManifestRow
    rate: int
    channels: int
    frames: int


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ParleyError(
            f"bad dataset name {name!r}: letters, digits, '.', '_' and '-', up to 100, "
            "starting with a letter or digit"
        )
    return name


def next_version(name: str, new_version: bool) -> int:
    """The version a new import of ``name`` gets; DatasetExists unless ``new_version``."""
    latest = (
        db.Dataset.select(db.Dataset.version)
        .where(db.Dataset.name == name)
        .order_by(db.Dataset.version.desc())
        .first()
    )
    if latest is None:
        return 1
    if not new_version:
        raise DatasetExists(
            f"dataset {name!r} exists (version {latest.version}); choose another name, or "
            f"add --new-version to make version {latest.version + 1}"
        )
    return int(latest.version) + 1


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ParleyError("datasets need soundfile: pip install 'parley[research]'") from None
    return soundfile


def probe(row: ManifestRow) -> Probed:
    """Check one row's recording and frames without decoding the audio."""
    soundfile = _soundfile()
    try:
        info = soundfile.info(str(row.audio))
    except Exception as exc:  # libsndfile's errors are plain RuntimeError/LibsndfileError
        raise ManifestError(f"{row.where}: cannot read {row.audio.name}: {exc}") from None
    try:
        check_format(int(info.samplerate), int(info.channels))
    except AudioFormatError as exc:
        raise ManifestError(f"{row.where}: {row.audio.name}: {exc}") from None
    if info.frames <= 0:
        raise ManifestError(f"{row.where}: {row.audio.name} holds no audio")
    for frame in row.frames:
        with frame.path.open("rb") as fh:
            if fh.read(3) != JPEG_MAGIC:
                raise ManifestError(f"{row.where}: frame {frame.path.name} is not a JPEG file")
    return Probed(row, int(info.samplerate), int(info.channels), int(info.frames))


def _positions(rows: Sequence[ManifestRow]) -> list[int]:
    """Each row's position in its conversation (0 for single items): given positions
    are kept in order, missing ones follow the rows' order."""
    order: dict[str, list[tuple[int, int, int]]] = {}
    for index, row in enumerate(rows):
        if row.conversation:
            given = row.position if row.position is not None else 1 << 30
            order.setdefault(row.conversation, []).append((given, index, index))
    positions = [0] * len(rows)
    for members in order.values():
        for rank, (_, _, index) in enumerate(sorted(members)):
            positions[index] = rank
    return positions


def _write_item(probed: Probed, index: int, stage: Path) -> dict[str, Any]:
    """Decode one recording (and copy its frames) into ``stage``; the item's fields."""
    row = probed.row
    try:
        samples, rate = _soundfile().read(str(row.audio), dtype="int16", always_2d=True)
    except Exception as exc:
        raise ManifestError(f"{row.where}: cannot decode {row.audio.name}: {exc}") from None
    if not len(samples):
        raise ManifestError(f"{row.where}: {row.audio.name} holds no audio")
    name = f"{index:05d}.wav"
    write_wav(stage / name, samples.astype("<i2").tobytes(), int(rate), samples.shape[1])
    seconds = len(samples) / rate
    frames = []
    for number, frame in enumerate(row.frames):
        frame_name = f"{index:05d}-frame-{number:02d}.jpg"
        shutil.copyfile(frame.path, stage / frame_name)
        offset = seconds / 2 if frame.offset_s is None else frame.offset_s
        frames.append({"path": frame_name, "offset_s": round(min(max(offset, 0.0), seconds), 3)})
    return {
        "position": index,
        "key": row.key,
        "audio_path": name,
        "sample_rate": int(rate),
        "channels": int(samples.shape[1]),
        "seconds": seconds,
        "reference_transcript": row.reference,
        "reference_answer": row.answer,
        "tags": list(row.tags),
        "conversation": row.conversation,
        "frames": frames,
        "source_turn": row.source_turn,
    }


def create_dataset(
    name: str,
    rows: Sequence[ManifestRow],
    data_dir: Path,
    *,
    source: str,
    description: str = "",
    tags: Sequence[str] = (),
    new_version: bool = False,
) -> db.Dataset:
    """Validate ``rows`` and store them as the next version of dataset ``name``.

    ``tags`` are added to every item. Raises ManifestError (naming the row),
    DatasetExists, or ParleyError; on any error nothing is kept. The database must be
    open (:func:`parley.db.open_database`)."""
    check_name(name)
    if not rows:
        raise ManifestError("no recordings to import")
    next_version(name, new_version)  # fail early, before any work
    probed = [probe(row) for row in rows]
    positions = _positions(rows)
    datasets = data_dir / "datasets"
    stage = datasets / f".staging-{uuid.uuid4().hex}"
    stage.mkdir(parents=True)
    final: Path | None = None
    try:
        items = []
        for index, (checked, position) in enumerate(zip(probed, positions, strict=True)):
            fields = _write_item(checked, index, stage)
            fields["conversation_position"] = position
            fields["tags"] = list(dict.fromkeys([*fields["tags"], *tags]))
            items.append(fields)
        with db.write_transaction():
            version = next_version(name, new_version)
            dataset = db.Dataset.create(
                name=name, version=version, source=source, description=description
            )
            relative = f"datasets/{name}/v{version}"
            for fields in items:
                fields["dataset"] = dataset.id
                fields["audio_path"] = f"{relative}/{fields['audio_path']}"
                for frame in fields["frames"]:
                    frame["path"] = f"{relative}/{frame['path']}"
            for start in range(0, len(items), 500):
                db.DatasetItem.insert_many(items[start : start + 500]).execute()
            final = data_dir / relative
            if final.exists():  # left by an import that died before committing
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            stage.rename(final)
        return dataset
    except BaseException:
        if final is not None and final.exists() and not stage.exists():
            shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
