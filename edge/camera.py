"""Camera sources: picamera2 on a Raspberry Pi, or a folder of JPEG images.

A source is anything with ``open()``, ``capture() -> Frame`` (blocking: the agent calls
it in a thread, so a slow camera never holds up audio) and ``close()``. picamera2 is
imported only when a Pi camera is opened; it cannot be installed off a Pi (it needs
libcamera), and then opening it fails with a message saying so.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from parley.errors import ParleyError


class CameraError(ParleyError):
    """The camera cannot be opened or read."""


@dataclass(frozen=True)
class Frame:
    jpeg: bytes
    width: int
    height: int


class FrameSource(Protocol):
    def open(self) -> None: ...

    def capture(self) -> Frame: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment; CameraError if it is not
    a JPEG."""
    if data[:2] != b"\xff\xd8":
        raise CameraError("not a JPEG image")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1  # fill bytes / padding between segments
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise CameraError("JPEG image without a frame header")


class FolderSource:
    """Cycles through the JPEG files in a folder (sorted by name), reading each file
    when it is captured, so a folder that another program refreshes works too."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self._files: Iterator[Path] = iter(())
        self.count = 0

    def describe(self) -> str:
        return f"image folder {self.folder} ({self.count} JPEG files)"

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"camera folder {self.folder} does not exist")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        if not files:
            raise CameraError(f"no .jpg/.jpeg images in {self.folder}")
        self.count = len(files)
        self._files = itertools.cycle(files)

    def capture(self) -> Frame:
        path = next(self._files)
        try:
            jpeg = path.read_bytes()
        except OSError as exc:
            raise CameraError(f"cannot read {path}: {exc.strerror}") from None
        width, height = jpeg_size(jpeg)
        return Frame(jpeg, width, height)

    def close(self) -> None:
        self._files = iter(())


PI_CAMERA_HELP = (
    "picamera2 is not available{why}. It only works on a Raspberry Pi: "
    "`sudo apt install python3-picamera2` and create the virtual environment with "
    "`--system-site-packages` (see docs/raspberry-pi.md); elsewhere use --camera-folder "
    "or --no-camera"
)


def _default_factory() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraError(PI_CAMERA_HELP.format(why=f" ({exc})")) from None
    return Picamera2()


class Picamera2Source:
    """A Raspberry Pi camera module through picamera2: a video configuration at
    ``width`` x ``height``; each capture encodes the newest frame as a JPEG."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        *,
        quality: int = 80,
        factory: Callable[[], Any] = _default_factory,
    ) -> None:
        self.width, self.height, self.quality = width, height, quality
        self._factory = factory
        self._camera: Any = None

    def describe(self) -> str:
        return f"Raspberry Pi camera ({self.width}x{self.height}, JPEG quality {self.quality})"

    def open(self) -> None:
        camera = self._factory()
        try:
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"}, buffer_count=2
            )
            camera.configure(config)
            camera.options["quality"] = self.quality
            camera.start()
        except Exception as exc:  # libcamera's errors are plain RuntimeErrors
            camera.close()
            raise CameraError(f"cannot start the Pi camera: {exc}") from None
        self._camera = camera

    def capture(self) -> Frame:
        if self._camera is None:
            raise CameraError("the camera is not open")
        buffer = io.BytesIO()
        self._camera.capture_file(buffer, format="jpeg")
        jpeg = buffer.getvalue()
        width, height = jpeg_size(jpeg)
        return Frame(jpeg, width, height)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.stop()
            camera.close()


def pi_camera_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("picamera2") is not None
    except (ImportError, ValueError):
        return False


def open_camera(
    kind: str, *, folder: str = "", width: int = 640, height: int = 480, quality: int = 80
) -> FrameSource | None:
    """The configured source: ``auto`` (a folder if one is set, else the Pi camera if
    picamera2 is installed, else none), ``picamera2``, ``folder`` or ``none``."""
    if kind == "auto":
        kind = "folder" if folder else "picamera2" if pi_camera_available() else "none"
    if kind == "none":
        return None
    if kind == "folder":
        if not folder:
            raise CameraError("the folder camera needs a folder (--camera-folder)")
        return FolderSource(folder)
    if kind == "picamera2":
        return Picamera2Source(width, height, quality=quality)
    raise CameraError(f"unknown camera {kind!r} (auto, picamera2, folder or none)")
