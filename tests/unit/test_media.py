"""Turn media written atomically: no partial file is ever in place, failures clean up,
and a killed process's leftovers are cleared at the next start."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import BinaryIO

import pytest

from server.media import PARTIAL_DIR, MediaWriter


def test_a_wav_is_written_complete_and_nothing_is_left_in_partial(tmp_path: Path) -> None:
    media = MediaWriter(tmp_path)
    media.open()
    size = media.write_wav("turns/t1/input.wav", b"\x01\x00" * 1600, 16000)
    path = tmp_path / "turns/t1/input.wav"
    assert path.stat().st_size == size
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (16000, 1600)
    assert not list((tmp_path / PARTIAL_DIR).iterdir())


def test_a_write_that_fails_half_way_leaves_no_file_and_names_its_target(tmp_path: Path) -> None:
    media = MediaWriter(tmp_path)
    media.open()

    def fill(out: BinaryIO) -> None:
        out.write(b"x" * 1000)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as failed:
        media.write("turns/t1/input.wav", fill)
    assert failed.value.filename == str(tmp_path / "turns/t1/input.wav")
    assert not (tmp_path / "turns/t1/input.wav").exists()
    assert not list((tmp_path / PARTIAL_DIR).iterdir())


def test_a_failed_batch_removes_the_files_it_had_put_in_place(tmp_path: Path) -> None:
    media = MediaWriter(tmp_path)
    media.open()
    media.write_bytes("turns/kept.jpg", b"kept")
    with pytest.raises(RuntimeError), media.batch():
        media.write_bytes("turns/t2/frame-000.jpg", b"jpeg")
        media.write_wav("turns/t2/input.wav", b"\0\0", 16000)
        raise RuntimeError("the transaction rolled back")
    assert not (tmp_path / "turns/t2/frame-000.jpg").exists()
    assert not (tmp_path / "turns/t2/input.wav").exists()
    assert (tmp_path / "turns/kept.jpg").read_bytes() == b"kept"


def test_open_clears_what_a_killed_process_left_half_written(tmp_path: Path) -> None:
    (tmp_path / PARTIAL_DIR).mkdir()
    (tmp_path / PARTIAL_DIR / "abc-input.wav").write_bytes(b"RIFF")
    assert MediaWriter(tmp_path).open() == 1
    assert not list((tmp_path / PARTIAL_DIR).iterdir())
