"""A real server and real worker servers on free loopback ports, in this test's loop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from parley.audio import AudioConverter, float_to_pcm16, read_audio
from parley.config import (
    Config,
    PipelineConfig,
    PoolConfig,
    ServerConfig,
    StageConfig,
    StoreConfig,
    VadConfig,
    WorkersConfig,
    load_config,
)
from parley.telemetry import Telemetry
from protos import edge_pb2
from server.app import RunningServer, start_server
from workers.main import serve_engine

DATA = Path(__file__).resolve().parents[1] / "data"
LAMP = DATA / "turn_on_the_living_room_lamp.wav"


def free_address() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


class Stack:
    """Workers for fake/real engines plus the server, all torn down at the end."""

    def __init__(self, home: Path, database_url: str = "") -> None:
        self.home = home
        self.database_url = database_url or f"sqlite:///{home}/test.db"
        self.workers: dict[str, grpc.aio.Server] = {}
        self.addresses: dict[str, str] = {}
        self.server: RunningServer | None = None
        self.config: Config | None = None
        self.security = WorkersConfig()  # the workers' token and TLS, as served and dialled

    async def start_worker(
        self, stage: str, engine: Any, address: str | None = None, kind: str | None = None
    ) -> str:
        """Serve ``engine`` as the worker of ``stage`` (a stage name; ``kind``: its
        kind, default the name)."""
        address = address or self.addresses.get(stage) or free_address()
        name = type(engine).__name__
        server, _ = await serve_engine(kind or stage, name, engine, address, security=self.security)
        self.workers[stage] = server
        self.addresses[stage] = address
        return address

    async def start_pipeline(
        self,
        pipeline: str,
        engines: Mapping[str, Any],
        *,
        toml: str = "",
        server: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Config:
        """Serve a configured pipeline (bundled, or defined in ``toml``) with test
        engines: ``engines`` maps each stage name to its engine; the stages' pools are
        pointed at them. Returns the config the server runs with."""
        path = self.home / "parley.toml"
        path.write_text(toml)
        config = load_config(path, env={"PARLEY_HOME": str(self.home), **dict(env or {})})
        pools = dict(config.pools)
        for name, stage in config.pipeline(pipeline).stages.items():
            pool = pools[stage.pool]
            address = self.addresses.get(pool.name)
            if address is None:
                address = await self.start_worker(name, engines[name], kind=pool.stage)
                self.addresses[pool.name] = address
            pools[pool.name] = dataclasses.replace(pool, addresses=(address,))
        config = dataclasses.replace(
            config,
            server=dataclasses.replace(
                ServerConfig(default_pipeline=pipeline, port=0), **dict(server or {})
            ),
            store=StoreConfig(database_url=f"sqlite:///{self.home}/test.db"),
            pools=pools,
        )
        self.config = config
        self.server = await start_server(config, "127.0.0.1:0")
        return config

    async def stop_worker(self, stage: str) -> None:
        await self.workers.pop(stage).stop(None)

    async def start(
        self,
        engines: Mapping[str, Any],
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        server: Mapping[str, Any] | None = None,
        vad: Mapping[str, Any] | None = None,
        dead: tuple[str, ...] = (),
        telemetry: Telemetry | None = None,
        workers: WorkersConfig | None = None,
        listen: str = "127.0.0.1:0",
        dial: WorkersConfig | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Config:
        """Serve ``engines`` (stage -> engine); stages in ``dead`` get an address
        where nothing listens. ``workers``: the workers' token and TLS (also how the
        server dials them, unless ``dial`` differs); ``listen``: the server's address;
        ``settings``: section -> values to change (e.g.
        ``{"limits": {"max_frame_bytes": 10}}``). Returns the config the server runs with."""
        self.security = workers or WorkersConfig()
        for stage in ("stt", "llm", "tts"):
            if stage in dead:
                self.addresses[stage] = free_address()
            else:
                await self.start_worker(stage, engines[stage])
        pools = {
            f"test-{s}": PoolConfig(
                f"test-{s}", s, "fake", (self.addresses[s],), security=dial or self.security
            )
            for s in ("stt", "llm", "tts")
        }
        stages = {
            s: StageConfig(f"test-{s}", dict((params or {}).get(s, {})))
            for s in ("stt", "llm", "tts")
        }
        config = Config(
            home=self.home,
            server=dataclasses.replace(
                ServerConfig(default_pipeline="test", port=0), **dict(server or {})
            ),
            vad=dataclasses.replace(VadConfig(), **dict(vad or {})),
            store=StoreConfig(database_url=self.database_url),
            pools=pools,
            pipelines={"test": PipelineConfig("test", **stages)},
        )
        for section, values in (settings or {}).items():
            changed = dataclasses.replace(getattr(config, section), **values)
            config = dataclasses.replace(config, **{section: changed})
        self.config = config
        self.server = await start_server(config, listen, telemetry)
        return config

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
        for server in self.workers.values():
            await server.stop(None)


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """The stack, storing into SQLite; a test that also asks for ``database_url`` runs
    on every backend (tests/conftest.py)."""
    url = ""
    if "database_url" in request.fixturenames:
        url = request.getfixturevalue("database_url")
    running = Stack(tmp_path, url)
    yield running
    await running.close()


def hello(
    pipeline: str = "", rate: int = 16000, channels: int = 1, token: str = "", **extra: Any
) -> edge_pb2.Hello:
    return edge_pb2.Hello(
        device_id=extra.pop("device_id", "test-device"),
        token=token,
        pipeline=pipeline,
        audio_format=edge_pb2.AudioFormat(
            sample_rate=rate,
            channels=channels,
            encoding=extra.pop("encoding", edge_pb2.AudioFormat.PCM16LE),
        ),
    )


def speech(path: Path = LAMP, silence_s: float = 1.0) -> tuple[np.ndarray, int]:
    """A recording as 16 kHz mono PCM16 (the default Hello format) plus trailing silence."""
    samples, rate = read_audio(path)
    converter = AudioConverter(rate, 1 if samples.ndim == 1 else samples.shape[1])
    mono = float_to_pcm16(np.concatenate([converter.convert(samples.tobytes()), converter.flush()]))
    return np.concatenate([mono, np.zeros(int(silence_s * 16000), np.int16)]), 16000


def audio_events(
    samples: np.ndarray, rate: int, start_seq: int = 0, chunk_ms: int = 20
) -> list[edge_pb2.EdgeEvent]:
    step = rate * chunk_ms // 1000
    now = time.monotonic()
    return [
        edge_pb2.EdgeEvent(
            audio=edge_pb2.AudioChunk(
                seq=start_seq + i,
                pcm=samples[offset : offset + step].tobytes(),
                capture_time=now + offset / rate,
            )
        )
        for i, offset in enumerate(range(0, len(samples), step))
    ]


class EdgeClient:
    """A scripted edge: send events when told, record every server event."""

    def __init__(
        self,
        address: str,
        first: edge_pb2.Hello | edge_pb2.EdgeEvent,
        *,
        own_connection: bool = False,
    ) -> None:
        """``own_connection``: a TCP connection of its own, as each real edge has (by
        default gRPC shares one between channels to the same address)."""
        self.address = address
        self.options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        self.first = (
            first if isinstance(first, edge_pb2.EdgeEvent) else edge_pb2.EdgeEvent(hello=first)
        )
        self.outbox: asyncio.Queue[edge_pb2.EdgeEvent | None] = asyncio.Queue()
        self.events: list[edge_pb2.ServerEvent] = []
        self.arrived: list[float] = []  # time.monotonic() when each event came
        self.status: grpc.StatusCode | None = None
        self._new_event = asyncio.Event()

    async def __aenter__(self) -> EdgeClient:
        self.channel = grpc.aio.insecure_channel(self.address, options=self.options)
        from protos import edge_pb2_grpc

        self.call = edge_pb2_grpc.EdgeStub(self.channel).Converse(self._requests())
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.call.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.channel.close()

    async def _requests(self) -> AsyncIterator[edge_pb2.EdgeEvent]:
        yield self.first
        while (event := await self.outbox.get()) is not None:
            yield event

    async def _read(self) -> None:
        try:
            async for event in self.call:
                self.arrived.append(time.monotonic())
                self.events.append(event)
                self._new_event.set()
        except grpc.aio.AioRpcError as exc:
            self.status = exc.code()
        else:
            self.status = grpc.StatusCode.OK
        finally:
            self._new_event.set()

    async def send(self, events: list[edge_pb2.EdgeEvent], pace: float = 0.0) -> None:
        for event in events:
            await self.outbox.put(event)
            if pace:
                await asyncio.sleep(pace)

    async def close_send(self) -> None:
        await self.outbox.put(None)

    async def wait_for(
        self, predicate: Callable[[edge_pb2.ServerEvent], bool], timeout: float = 20.0
    ) -> edge_pb2.ServerEvent:
        """The first recorded event matching ``predicate`` (waiting for it if needed)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                if self.reader.done():
                    raise AssertionError(f"stream ended ({self.status}) before the event came")
                self._new_event.clear()
                await self._new_event.wait()

    async def wait_until(
        self, condition: Callable[[list[edge_pb2.ServerEvent]], bool], timeout: float = 20.0
    ) -> None:
        """Wait until ``condition(all events so far)`` holds."""
        async with asyncio.timeout(timeout):
            while not condition(self.events):
                if self.reader.done():
                    raise AssertionError(f"stream ended ({self.status}) before the condition")
                self._new_event.clear()
                await self._new_event.wait()

    def errors(self) -> list[edge_pb2.Error]:
        return [e.error for e in self.events if e.WhichOneof("event") == "error"]

    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]


def is_turn(kind: int, turn_id: str | None = None) -> Callable[[edge_pb2.ServerEvent], bool]:
    def check(event: edge_pb2.ServerEvent) -> bool:
        return (
            event.WhichOneof("event") == "turn"
            and event.turn.kind == kind
            and (turn_id is None or event.turn.turn_id == turn_id)
        )

    return check


def is_kind(name: str) -> Callable[[edge_pb2.ServerEvent], bool]:
    return lambda event: event.WhichOneof("event") == name


@dataclasses.dataclass(frozen=True)
class StoredOutput:
    """A context stage's entry in ``Turn.outputs``, split as the tests read it: ``value``
    is what the stage produced (without the stored ``kind``/``status``/``error`` and an
    analyse stage's copied best ``label``/``score``)."""

    stage: str
    kind: str
    status: str
    error: str
    value: dict[str, Any]
    entry: dict[str, Any]


def stored_outputs(turn_id: str) -> dict[str, StoredOutput]:
    from parley import db

    with db.database.connection_context():
        outputs = db.Turn.get_by_id(turn_id).outputs or {}
    meta = {"kind", "status", "error", "label", "score"}
    return {
        name: StoredOutput(
            name,
            entry["kind"],
            entry["status"],
            entry["error"],
            {k: v for k, v in entry.items() if k not in meta},
            entry,
        )
        for name, entry in outputs.items()
        if isinstance(entry, dict) and "kind" in entry
    }
