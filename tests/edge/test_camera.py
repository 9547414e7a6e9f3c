"""Camera sources (a stand-in for picamera2's Picamera2, the folder source for real),
and frames on the stream: stored with the turn, dropped rather than delaying audio."""

from __future__ import annotations

import asyncio
import io
import itertools
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge import camera as camera_mod
from edge.agent import EdgeAgent
from edge.camera import (
    CameraError,
    FolderSource,
    Frame,
    Picamera2Source,
    jpeg_size,
    open_camera,
)
from edge.speaker import NullSpeaker
from edge.tls import secure_dial
from parley import db
from tests.edge.conftest import ScriptedSource, edge_config, lamp_16k, running, wait_until
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import Stack

FRAMES = Path(__file__).resolve().parents[1] / "data" / "frames"


class StandInPicamera2:
    """Records what the source asks of picamera2's Picamera2 and 'captures' a JPEG."""

    def __init__(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self.options: dict[str, Any] = {}
        self.calls: list[str] = []
        self.configured: dict[str, Any] = {}

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"video": kwargs}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.configured = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_file(self, target: io.BytesIO, format: str) -> None:
        assert format == "jpeg"
        self.calls.append("capture_file")
        target.write(self.jpeg)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_source_configures_size_and_quality_and_captures_jpegs() -> None:
    jpeg = (FRAMES / "frame-a.jpg").read_bytes()
    stand_in = StandInPicamera2(jpeg)
    source = Picamera2Source(320, 240, quality=70, factory=lambda: stand_in)
    source.open()
    frame = source.capture()
    source.close()
    assert frame == Frame(jpeg, 320, 240)
    assert stand_in.configured["video"]["main"]["size"] == (320, 240)
    assert stand_in.options["quality"] == 70
    assert stand_in.calls == [
        "create_video_configuration",
        "configure",
        "start",
        "capture_file",
        "stop",
        "close",
    ]


def test_picamera2_start_failure_closes_the_camera_and_says_why() -> None:
    stand_in = StandInPicamera2(b"")

    def fail() -> None:
        raise RuntimeError("Camera __init__ sequence did not complete")

    stand_in.start = fail  # type: ignore[method-assign]
    source = Picamera2Source(factory=lambda: stand_in)
    with pytest.raises(CameraError, match="cannot start the Pi camera: Camera __init__"):
        source.open()
    assert stand_in.calls[-1] == "close"


def test_without_picamera2_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails, as off a Pi
    with pytest.raises(CameraError) as info:
        Picamera2Source().open()
    message = str(info.value)
    assert "python3-picamera2" in message and "--system-site-packages" in message
    assert "--camera-folder" in message and "--no-camera" in message


def test_auto_camera_is_none_off_a_pi_and_the_folder_when_one_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(camera_mod, "pi_camera_available", lambda: False)
    assert open_camera("auto") is None
    assert isinstance(open_camera("auto", folder=str(FRAMES)), FolderSource)
    monkeypatch.setattr(camera_mod, "pi_camera_available", lambda: True)
    assert isinstance(open_camera("auto", width=320, height=240), Picamera2Source)
    assert open_camera("none", folder=str(FRAMES)) is None
    with pytest.raises(CameraError, match="unknown camera 'webcam'"):
        open_camera("webcam")


def test_folder_source_cycles_through_the_jpegs_in_name_order(tmp_path: Path) -> None:
    shutil.copy(FRAMES / "frame-b.jpg", tmp_path / "2.JPG")
    shutil.copy(FRAMES / "frame-a.jpg", tmp_path / "1.jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    source = FolderSource(tmp_path)
    source.open()
    frames = [source.capture() for _ in range(3)]
    a, b = (FRAMES / "frame-a.jpg").read_bytes(), (FRAMES / "frame-b.jpg").read_bytes()
    assert [f.jpeg for f in frames] == [a, b, a]
    assert all((f.width, f.height) == (320, 240) for f in frames)
    assert "2 JPEG files" in source.describe()


def test_folder_source_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        FolderSource(tmp_path / "missing").open()
    with pytest.raises(CameraError, match=r"no \.jpg"):
        FolderSource(tmp_path).open()
    (tmp_path / "broken.jpg").write_bytes(b"GIF89a....")
    source = FolderSource(tmp_path)
    source.open()
    with pytest.raises(CameraError, match="not a JPEG"):
        source.capture()


def test_jpeg_size_reads_the_frame_header() -> None:
    assert jpeg_size((FRAMES / "frame-a.jpg").read_bytes()) == (320, 240)
    with pytest.raises(CameraError):
        jpeg_size(b"\xff\xd8\xff\xd9")


class SlowCamera(FolderSource):
    """A folder camera that takes ``delay`` seconds per capture (in its thread)."""

    def __init__(self, folder: Path, delay: float) -> None:
        super().__init__(folder)
        self.delay = delay

    def capture(self) -> Frame:
        time.sleep(self.delay)
        return super().capture()


async def test_frames_seen_during_a_turn_are_stored_with_it(stack: Stack) -> None:
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Okay."), "tts": ToneTts()})
    source = ScriptedSource()
    config = edge_config(stack.address, camera="folder", camera_fps=5.0)
    turns: list[str] = []
    agent = EdgeAgent(
        config,
        source=source,
        speaker=NullSpeaker(),
        camera=SlowCamera(FRAMES, delay=0.15),  # slower than the audio's 20 ms pace
        dial=lambda: secure_dial(stack.address),
        observer=lambda e: turns.append(e.turn.turn_id) if e.turn.kind == 3 else None,
    )
    async with running(agent):
        await asyncio.sleep(0.3)
        source.say(lamp_16k())
        await wait_until(lambda: turns, timeout=20)
    with db.database.connection_context():
        frames = list(db.Media.select().where(db.Media.turn == turns[0], db.Media.kind == "frame"))
    assert len(frames) >= 5  # ~3 s of speech at 5 fps, less what fell outside the turn
    assert agent.stats.frames_sent >= len(frames)
    # The slow camera never held up the audio: chunks kept their 20 ms pace.
    times = [c.capture_time for c in source.captured]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.021


class BackedUpUplink:
    """Stands in for the uplink: an outbox with ``backlog`` events waiting."""

    def __init__(self) -> None:
        self.backlog: int | None = 50
        self.offered: list[Any] = []

    def offer(self, event: Any) -> bool:
        self.offered.append(event)
        return True


async def test_frames_are_dropped_not_queued_while_the_stream_is_backed_up() -> None:
    camera = FolderSource(FRAMES)
    camera.open()
    agent = EdgeAgent(
        edge_config("127.0.0.1:1", camera="folder", camera_fps=20.0),
        source=ScriptedSource(),
        speaker=NullSpeaker(),
        camera=camera,
        dial=lambda: secure_dial("127.0.0.1:1"),
    )
    uplink = BackedUpUplink()
    agent.uplink = uplink  # type: ignore[assignment]
    task = asyncio.create_task(agent._frames(camera))
    try:
        await asyncio.sleep(0.3)
        assert uplink.offered == [] and agent.stats.frames_dropped >= 4
        uplink.backlog = None  # disconnected: still nothing is captured or queued
        await asyncio.sleep(0.15)
        assert uplink.offered == []
        uplink.backlog = 0  # the stream drains: frames flow again
        await wait_until(lambda: len(uplink.offered) >= 3, timeout=2)
    finally:
        task.cancel()
    frames = [e.frame for e in uplink.offered]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert (frames[0].width, frames[0].height) == (320, 240)
    assert agent.stats.frames_sent == len(frames)


async def test_a_camera_that_cannot_open_is_logged_and_voice_runs_on(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.start({"stt": FixedStt(), "llm": ScriptedLlm("Okay."), "tts": ToneTts()})
    agent = EdgeAgent(
        edge_config(stack.address, camera="folder"),
        source=ScriptedSource(),
        speaker=NullSpeaker(),
        camera=FolderSource(tmp_path / "missing"),
        dial=lambda: secure_dial(stack.address),
    )
    async with running(agent):
        await wait_until(lambda: agent.snapshot()["chunks_sent"] > 5, timeout=5)
    assert agent.camera is None
    assert "camera" not in agent.hello().capabilities
    assert "camera unavailable, running without frames" in caplog.text
