"""Datasets, replay and comparison on the real path: recordings made from the shipped
speech in several rates, channel counts and formats; a real server with several named
pipelines on real worker servers (instant, tiny, or recording engines) on free ports."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley import db
from parley.audio import Resampler, read_audio
from parley.config import (
    Config,
    EdgeConfig,
    PipelineConfig,
    PoolConfig,
    ServerConfig,
    StageConfig,
    StoreConfig,
)
from research.replay import Replayer, ReplayOptions, RunTally
from research.runs import open_run
from server.app import RunningServer, start_server
from tests.engines.conftest import tiny_models  # noqa: F401  (a fixture)
from tests.integration.conftest import free_address
from workers.engines import LlmRequest, SttRequest, TextDelta, Transcript
from workers.main import serve_engine

DATA = Path(__file__).resolve().parents[1] / "data"
LAMP = DATA / "turn_on_the_living_room_lamp.wav"
JFK = DATA / "jfk.flac"


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str  # file name in the recordings folder
    speech_s: float  # what the server's VAD hears as speech in it (measured once)
    rate: int
    channels: int


# Five recordings with distinct speech lengths, so every turn shows which one it came
# from: the lamp command (once slowed down) and three parts of the JFK speech, in five
# rates, mono and stereo, as WAV, FLAC, Ogg Vorbis and MP3.
CLIPS = (
    Clip("lamp-44k-stereo.wav", 1.15, 44100, 2),
    Clip("lamp-slow-16k.flac", 1.38, 16000, 1),
    Clip("jfk-a-8k.wav", 1.89, 8000, 1),
    Clip("jfk-b-48k-stereo.ogg", 2.21, 48000, 2),
    Clip("jfk-c-22k.mp3", 2.4, 22050, 1),
)
_MADE = {  # clip name: (source, from second, to second, speed)
    "lamp-44k-stereo.wav": (LAMP, 0.0, None, 1.0),
    "lamp-slow-16k.flac": (LAMP, 0.0, None, 0.8),
    "jfk-a-8k.wav": (JFK, 0.0, 3.0, 1.0),
    "jfk-b-48k-stereo.ogg": (JFK, 5.0, 8.0, 1.0),
    "jfk-c-22k.mp3": (JFK, 7.8, None, 1.0),
}


def _variant(clip: Clip) -> np.ndarray:
    source, start, end, speed = _MADE[clip.name]
    samples, rate = read_audio(source)
    samples = samples[int(start * rate) : None if end is None else int(end * rate)]
    mono = samples.mean(axis=1) / 32768.0 if samples.ndim > 1 else samples / 32768.0
    resampler = Resampler(rate, round(clip.rate / speed))
    out = np.concatenate([resampler.process(mono), resampler.flush()]).clip(-1.0, 1.0)
    return np.stack([out, out], axis=1) if clip.channels == 2 else out


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the five CLIPS (soundfile writes every format)."""
    soundfile = pytest.importorskip("soundfile")
    folder = tmp_path_factory.mktemp("recordings")
    for clip in CLIPS:
        soundfile.write(str(folder / clip.name), _variant(clip), clip.rate)
    return folder


def copy_clips(recordings: Path, folder: Path, clips: Sequence[Clip]) -> Path:
    """A new folder holding some of the recordings."""
    folder.mkdir(parents=True)
    for clip in clips:
        (folder / clip.name).write_bytes((recordings / clip.name).read_bytes())
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Config]:
    """An open store in a temporary home (the config a CLI would have)."""
    config = Config(home=tmp_path, store=StoreConfig(database_url=f"sqlite:///{tmp_path}/s.db"))
    db.open_database(config.database_url)
    with db.database.connection_context():
        yield config
    db.database.close()


class SpeechLengthStt:
    """Hears how long the turn's audio is: "short" (the lamp) ... "long"."""

    model = "length"

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        size = sum([len(chunk) async for chunk in audio])
        seconds = size / 2 / request.sample_rate
        yield Transcript(f"{seconds:.1f} seconds", audio_seconds=seconds)


class CountingLlm:
    """Answers "<name> answer N." (N counts its calls) and keeps every request."""

    model = "counting"

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[LlmRequest] = []

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        self.requests.append(request)
        yield TextDelta(f"{self.name} answer {len(self.requests)}.")
        yield TextDelta("", finish_reason="stop")


class ResearchStack:
    """A real server with named pipelines, each on its own worker servers."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.workers: list[Any] = []
        self.server: RunningServer | None = None
        self.config: Config | None = None

    async def start(
        self,
        pipelines: Mapping[str, Mapping[str, Any]],
        params: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> Config:
        """``pipelines``: name -> {stage: engine}; ``params``: name -> stage -> params."""
        pools, specs = {}, {}
        for name, engines in pipelines.items():
            stages = {}
            for stage in ("stt", "llm", "tts"):
                address = free_address()
                server, _ = await serve_engine(stage, name, engines[stage], address)
                self.workers.append(server)
                pool = f"{name}-{stage}"
                pools[pool] = PoolConfig(pool, stage, type(engines[stage]).__name__, (address,))
                given = ((params or {}).get(name) or {}).get(stage, {})
                stages[stage] = StageConfig(pool, dict(given))
            specs[name] = PipelineConfig(name, **stages)
        self.config = Config(
            home=self.home,
            server=ServerConfig(default_pipeline=next(iter(pipelines)), port=0),
            store=StoreConfig(database_url=f"sqlite:///{self.home}/store.db"),
            pools=pools,
            pipelines=specs,
        )
        self.server = await start_server(self.config, "127.0.0.1:0")
        return self.config

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    async def replay(
        self,
        dataset: db.Dataset,
        pipelines: list[str],
        *,
        run: str = "run",
        fast: bool = True,
        concurrency: int = 2,
    ) -> list[RunTally]:
        """`parley replay DATASET --pipeline ... --run RUN` against this server."""
        assert self.config is not None
        config = self.config

        def open_runs() -> list[db.Run]:
            with db.database.connection_context():
                names = [run] if len(pipelines) == 1 else [f"{run}-{p}" for p in pipelines]
                pace = "fast" if fast else "realtime"
                return [
                    open_run(n, dataset, p, config, pace)[0]
                    for n, p in zip(names, pipelines, strict=True)
                ]

        runs = await asyncio.to_thread(open_runs)
        edge = EdgeConfig(server=self.address, device_id="test-replay")
        options = ReplayOptions(fast=fast, concurrency=concurrency, answer_timeout_s=60.0)
        return await Replayer(edge, config.data_dir, options).replay(dataset, runs)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
        for server in self.workers:
            await server.stop(None)


@pytest.fixture
async def research_stack(tmp_path: Path) -> AsyncIterator[ResearchStack]:
    running = ResearchStack(tmp_path)
    yield running
    await running.close()
