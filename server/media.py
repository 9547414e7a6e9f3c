"""Turn media written so that no partial file is ever referenced.

Each file is written under ``<data_dir>/.partial/``, flushed to disk (fsync) and only
then renamed to its place (same file system, so the rename is atomic), before the
database row that names it is committed. A write that fails (disk full, read-only
directory) removes its temporary file; a store transaction that fails removes the
files it had already put in place (:meth:`MediaWriter.batch`); a process killed
mid-write leaves only files in ``.partial/``, which the next start clears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MediaWriter:
    """Atomic files below ``data_dir`` (paths relative to it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.partial_dir = data_dir / PARTIAL_DIR
        self._batch: list[Path] | None = None

    def open(self) -> int:
        """Create the directories; remove partial files left by a killed process
        (returns how many)."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.partial_dir.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed += 1
        if removed:
            log.warning("removed %d partial media file(s) left by an unclean stop", removed)
        return removed

    def write(self, relative: str, fill: Callable[[BinaryIO], None]) -> int:
        """Write ``relative`` with ``fill(file)``; returns its size in bytes."""
        target = self.data_dir / relative
        temp = self.partial_dir / f"{uuid.uuid4().hex}-{target.name}"
        try:
            with temp.open("wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            size = temp.stat().st_size
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(exc, OSError) and not exc.filename:  # say which file it was
                raise OSError(exc.errno, exc.strerror, str(target)) from exc
            raise
        if self._batch is not None:
            self._batch.append(target)
        with contextlib.suppress(OSError):  # the rename itself made durable
            _fsync_dir(target.parent)
        return size

    def write_wav(self, relative: str, pcm16: bytes, rate: int, channels: int = 1) -> int:
        def fill(out: BinaryIO) -> None:
            with wave.open(out, "wb") as wav:
                wav.setnchannels(channels)
                wav.setsampwidth(2)
                wav.setframerate(rate)
                wav.writeframes(pcm16)

        return self.write(relative, fill)

    def write_bytes(self, relative: str, data: bytes) -> int:
        def fill(out: BinaryIO) -> None:
            out.write(data)

        return self.write(relative, fill)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Files written inside are removed again if the block fails (so a transaction
        that rolls back leaves no file behind)."""
        self._batch = []
        try:
            yield
        except BaseException:
            for path in self._batch:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        finally:
            self._batch = None
