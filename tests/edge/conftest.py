"""Fixtures for the edge agent's tests: a private PulseAudio server with a null sink
(real sound devices on a machine without a sound card), a scripted microphone, a TTS
engine that speaks a given recording, and helpers to run the agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.agent import EdgeAgent
from edge.scripted_mic import ScriptedSource  # noqa: F401 (the tests' microphone)
from parley.audio import AudioConverter, Resampler, float_to_pcm16, read_audio
from parley.chaos.crash import reference_turn_seconds as turn_seconds
from parley.config import EdgeConfig
from protos import edge_pb2
from tests.integration.conftest import Stack
from workers.engines import Speech, TtsRequest

DATA = Path(__file__).resolve().parents[1] / "data"
LAMP = DATA / "turn_on_the_living_room_lamp.wav"
RATE = 16000


def lamp_16k() -> np.ndarray:
    """The spoken command as 16 kHz mono int16."""
    samples, rate = read_audio(LAMP)
    converter = AudioConverter(rate, 1 if samples.ndim == 1 else samples.shape[1])
    return float_to_pcm16(np.concatenate([converter.convert(samples.tobytes()), converter.flush()]))


def reference_turn_seconds() -> float:
    """The turn the server's VAD finds in the clip when it is sent directly."""
    return turn_seconds(lamp_16k())


def at_rate(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    resampler = Resampler(src, dst)
    x = samples.astype(np.float32) / 32768
    return float_to_pcm16(np.concatenate([resampler.process(x), resampler.flush()]))


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return float_to_pcm16(amplitude * np.sin(2 * np.pi * freq * t))


# --------------------------------------------------------------------------- PulseAudio


@dataclass
class Pulse:
    """A running PulseAudio with a null sink; its monitor is the default source."""

    server: str
    sink: str = "parley_test"

    @property
    def monitor(self) -> str:
        return f"{self.sink}.monitor"

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["paplay", f"--device={self.sink}", str(wav)])

    def record(self, path: Path, rate: int = RATE) -> subprocess.Popen[bytes]:
        """parec of the sink's monitor as raw 16 kHz mono PCM16 into ``path``."""
        command = ["parec", f"--device={self.monitor}", f"--rate={rate}", "--channels=1"]
        command += ["--format=s16le", "--raw", "--latency-msec=20"]
        with path.open("wb") as out:
            return subprocess.Popen(command, stdout=out)


def _pulse_unavailable() -> str:
    missing = [t for t in ("pulseaudio", "pactl", "paplay", "parec") if not shutil.which(t)]
    if missing:
        return (
            f"PulseAudio tools missing ({', '.join(missing)}): "
            "apt install pulseaudio pulseaudio-utils libasound2-plugins"
        )
    try:
        from edge.devices import sounddevice

        sounddevice()
    except Exception as exc:
        return f"sounddevice cannot be used: {exc}"
    return ""


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulse]:
    reason = _pulse_unavailable()
    if reason:
        pytest.skip(reason)
    from edge import devices

    runtime = tmp_path_factory.mktemp("pulse")
    socket = runtime / "native"
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(runtime))
    env["PULSE_RUNTIME_PATH"] = str(runtime)
    command = ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit"]
    command += ["--use-pid-file=no", "--log-target=stderr"]
    command += ["-L", "module-null-sink sink_name=parley_test rate=48000 channels=1"]
    command += ["-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}"]
    log = (runtime / "pulseaudio.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = f"unix:{socket}"
    deadline = time.monotonic() + 10
    while subprocess.run(
        ["pactl", "info"], env=dict(env, PULSE_SERVER=server), capture_output=True
    ).returncode:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            tail = (runtime / "pulseaudio.log").read_text(errors="replace")[-800:]
            pytest.skip(f"PulseAudio could not start: {tail}")
        time.sleep(0.05)
    saved = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = server
    devices.rescan()  # PortAudio lists devices once: let it see the sound server
    try:
        yield Pulse(server)
    finally:
        if saved is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = saved
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        devices.rescan()


# --------------------------------------------------------------------------- sources, engines


class SpeakingTts:
    """A TTS engine whose answer is a given recording, streamed in ``chunk_s`` pieces
    ``delay`` seconds apart (each sentence speaks the whole recording)."""

    model = "speaking"

    def __init__(self, samples: np.ndarray, rate: int, chunk_s: float = 0.25, delay: float = 0.0):
        self.samples, self.rate, self.chunk_s, self.delay = samples, rate, chunk_s, delay

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        step = int(self.rate * self.chunk_s)
        index = 0
        async for _ in text:
            for offset in range(0, self.samples.size, step):
                piece = self.samples[offset : offset + step]
                last = offset + step >= self.samples.size
                yield Speech(piece.astype("<i2").tobytes(), self.rate, index, sentence_end=last)
                if self.delay:
                    await asyncio.sleep(self.delay)
            index += 1


# --------------------------------------------------------------------------- running things


class Events:
    def __init__(self) -> None:
        self.events: list[edge_pb2.ServerEvent] = []

    def __call__(self, event: edge_pb2.ServerEvent) -> None:
        self.events.append(event)

    def turns(self, kind: int) -> list[edge_pb2.TurnEvent]:
        return [e.turn for e in self.events if e.HasField("turn") and e.turn.kind == kind]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()


def edge_config(server: str, **settings: Any) -> EdgeConfig:
    defaults: dict[str, Any] = {"device_id": "test-edge", "camera": "none"}
    return EdgeConfig(server=server, **{**defaults, **settings})


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent, connect_timeout: float = 10.0) -> AsyncIterator[EdgeAgent]:
    """Run the agent in a task; wait until it is connected; stop it on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        async with asyncio.timeout(connect_timeout):
            waiter = asyncio.create_task(agent.connected.wait())
            done, _ = await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task in done:
                task.result()  # raise what stopped it
        yield agent
    finally:
        stop.set()
        await asyncio.wait([task], timeout=10)
        if not task.done():
            task.cancel()
            raise AssertionError("the agent did not stop within 10 s")
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def wait_until(condition: Any, timeout: float = 20.0, every: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(every)
