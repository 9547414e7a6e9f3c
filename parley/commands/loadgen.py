"""The load generator of `parley bench load`: many Converse streams of real speech,
paced at real time, from one asyncio loop.

Each stream is one edge: its own channel (its own TCP connection, so a server whose
processes share the port by SO_REUSEPORT gets the streams spread over them), a Hello,
then 16 kHz mono PCM16 chunks of ``chunk_ms``. Its audio is a speech clip followed by
silence, looped; a random number of silent chunks in front gives every stream its own
phase. Chunk k carries the capture time of its first sample and is sent when its
last sample would have been captured (as from a microphone), so the chunk size's
latency is part of every figure. Every second a Ping follows the audio: the server
answers it after handling all audio sent before it, so its round trip is how far the
server is behind real time.

All times are this process's monotonic clock, which is also the streams' capture
clock: the server's SPEECH_ENDED event names the speech end on it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

import parley
from parley import rpc
from parley.audio import AudioConverter, float_to_pcm16, read_audio
from parley.config import VadConfig
from parley.errors import ParleyError
from protos import edge_pb2, edge_pb2_grpc

RATE = 16000
PING_EVERY_S = 5.0  # as the edge agent (edge/uplink.py PING_S)
# Separate channels to one address share one connection unless each has its own pool.
CHANNEL_OPTIONS = [*rpc.CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]


@dataclass(frozen=True)
class Cycle:
    """One loop of a stream's audio: the clip then silence, cut into chunks."""

    chunks: tuple[bytes, ...]  # PCM16LE mono at 16 kHz, chunk_ms each
    chunk_ms: int
    turns: int  # turns the VAD finds in one cycle (calibrated)

    @property
    def seconds(self) -> float:
        return len(self.chunks) * self.chunk_ms / 1000

    @property
    def silence(self) -> bytes:
        return bytes(len(self.chunks[0]))


def clip_16k(path: Path) -> np.ndarray:
    """Any speech file as 16 kHz mono int16."""
    samples, rate = read_audio(path)
    converter = AudioConverter(rate, 1 if samples.ndim == 1 else samples.shape[1])
    pcm = samples.astype("<i2").tobytes()
    return float_to_pcm16(np.concatenate([converter.convert(pcm), converter.flush()]))


def build_cycle(clip: np.ndarray, gap_s: float, chunk_ms: int, vad: VadConfig) -> Cycle:
    """The clip plus ``gap_s`` of silence (rounded up to whole chunks), and how many
    turns the server's VAD finds in it (run here on the same model and settings)."""
    from server.turns import TurnDetector, TurnEnded
    from server.vad import SileroVad

    step = RATE * chunk_ms // 1000
    if step <= 0:
        raise ParleyError(f"chunk_ms must be at least 1, not {chunk_ms}")
    if gap_s * 1000 < vad.min_silence_ms + 200:
        raise ParleyError(
            f"the silence between clips ({gap_s} s) must be longer than the VAD's "
            f"min_silence_ms ({vad.min_silence_ms} ms) plus 200 ms, or turns run together"
        )
    samples = math.ceil((len(clip) + gap_s * RATE) / step) * step
    audio = np.zeros(samples, dtype=np.int16)
    audio[: len(clip)] = clip
    detector = TurnDetector(vad, SileroVad(model_path=vad.model_path or None))
    loops = 3
    looped = np.tile(audio, loops).astype(np.float32) / 32768
    ended = sum(isinstance(e, TurnEnded) for e in detector.feed(looped) + detector.flush())
    if ended % loops or not ended:
        raise ParleyError(f"the VAD finds {ended} turns in {loops} loops of the clip: use another")
    chunks = tuple(audio[i : i + step].tobytes() for i in range(0, samples, step))
    return Cycle(chunks, chunk_ms, ended // loops)


@dataclass(frozen=True)
class StreamPlan:
    """What one stream sends: ``lead`` silent chunks, ``loops`` cycles, ``tail`` silent,
    starting ``offset_s`` (less than a chunk) after the common start, so streams do not
    all send at the same instants (real devices are not in step)."""

    index: int
    lead: int
    loops: int
    tail: int
    offset_s: float = 0.0

    def chunks(self, cycle: Cycle) -> int:
        return self.lead + self.loops * len(cycle.chunks) + self.tail


def plan_streams(n: int, seconds: float, cycle: Cycle, seed: int = 0) -> list[StreamPlan]:
    """``n`` streams of about ``seconds`` each, at random phases of the cycle and of the
    chunk clock (whole cycles only; a cycle's own silence lets its last turn close)."""
    rng = np.random.default_rng(seed)
    per_cycle = len(cycle.chunks)
    total = max(per_cycle, round(seconds * 1000 / cycle.chunk_ms))
    plans = []
    for i in range(n):
        lead = int(rng.integers(0, per_cycle))
        loops = max(0, (total - lead) // per_cycle)
        offset = float(rng.uniform(0, cycle.chunk_ms / 1000))
        plans.append(StreamPlan(i, lead, loops, total - lead - loops * per_cycle, offset))
    return plans


@dataclass
class TurnSeen:
    """One turn as the generator saw it (times: this process's monotonic clock)."""

    speech_end: float | None = None  # SPEECH_ENDED edge_time
    ended_at: float | None = None  # when SPEECH_ENDED arrived
    first_audio: float | None = None  # first answer audio with samples arrived
    finished: bool = False
    interrupted: bool = False
    error: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)  # the server's record


@dataclass
class StreamResult:
    index: int
    expected_turns: int
    chunks_sent: int = 0
    turns: dict[str, TurnSeen] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)  # ping round trips
    late_ms: float = 0.0  # the most a send was behind its schedule (generator overload)
    errors: list[str] = field(default_factory=list)
    failed: str = ""  # the stream broke (gRPC status), or ""


class LoadStream:
    """One paced Converse stream."""

    def __init__(self, address: str, plan: StreamPlan, cycle: Cycle, hello: edge_pb2.Hello) -> None:
        self.plan, self.cycle = plan, cycle
        self.result = StreamResult(plan.index, plan.loops * cycle.turns)
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._call = edge_pb2_grpc.EdgeStub(self._channel).Converse()
        self._hello = hello
        self._welcome = asyncio.Event()
        self._pong = asyncio.Event()
        self._speaking = False  # speech started, turn not ended yet
        self._open_turns = 0  # ended, not finished
        self._settled = asyncio.Event()
        self._receiving: asyncio.Task[None] | None = None

    async def connect(self, timeout: float) -> None:
        """Send the Hello and wait for the Welcome."""
        self._receiving = asyncio.create_task(self._receive())
        async with asyncio.timeout(timeout):
            try:
                await self._call.write(edge_pb2.EdgeEvent(hello=self._hello))
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                await self._receiving  # the call ended at once: its status says why
                self.result.failed = self.result.failed or "the server ended the stream"
            await self._welcome.wait()
        if self.result.failed:
            raise ParleyError(f"stream {self.plan.index} refused: {self.result.failed}")

    async def run(self, t0: float, settle_timeout: float) -> StreamResult:
        """Stream from ``t0`` at real-time pace, then wait for the answers."""
        try:
            await self._send(t0)
            await self._call.write(edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=-1.0)))
            async with asyncio.timeout(settle_timeout):
                await self._settled.wait()  # every chunk handled, every turn finished
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError) as exc:
            self.result.failed = self.result.failed or f"{type(exc).__name__}: {exc}"
        finally:
            await self.close()
        return self.result

    async def close(self) -> None:
        if self._receiving is not None:
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(self._receiving)
            except TimeoutError:
                self._call.cancel()
            self._receiving.cancel()
            await asyncio.gather(self._receiving, return_exceptions=True)
        await self._channel.close()

    async def _send(self, t0: float) -> None:
        step_s = self.cycle.chunk_ms / 1000
        ping_every = max(1, round(PING_EVERY_S / step_s))
        silence, cycle = self.cycle.silence, self.cycle.chunks
        plan, result = self.plan, self.result
        for k in range(plan.chunks(self.cycle)):
            position = k - plan.lead
            pcm = (
                cycle[position % len(cycle)] if 0 <= position < plan.loops * len(cycle) else silence
            )
            due = t0 + (k + 1) * step_s  # the chunk's last sample is captured
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                result.late_ms = max(result.late_ms, -delay * 1000)
            chunk = edge_pb2.AudioChunk(seq=k, pcm=pcm, capture_time=t0 + k * step_s)
            await self._call.write(edge_pb2.EdgeEvent(audio=chunk))
            result.chunks_sent += 1
            if k % ping_every == ping_every - 1:
                ping = edge_pb2.Ping(edge_time=time.monotonic())
                await self._call.write(edge_pb2.EdgeEvent(ping=ping))

    def _check_settled(self) -> None:
        if self._pong.is_set() and not self._speaking and self._open_turns <= 0:
            self._settled.set()

    def _turn(self, turn_id: str) -> TurnSeen:
        return self.result.turns.setdefault(turn_id, TurnSeen())

    async def _receive(self) -> None:
        kinds = edge_pb2.TurnEvent
        try:
            async for event in self._call:
                kind = event.WhichOneof("event")
                if kind == "audio":
                    if event.audio.pcm:
                        seen = self._turn(event.audio.turn_id)
                        if seen.first_audio is None:
                            seen.first_audio = time.monotonic()
                elif kind == "turn":
                    turn = event.turn
                    seen = self._turn(turn.turn_id)
                    if turn.kind == kinds.SPEECH_STARTED:
                        self._speaking = True
                    elif turn.kind == kinds.SPEECH_ENDED:
                        seen.speech_end, seen.ended_at = turn.edge_time, time.monotonic()
                        self._speaking = False
                        self._open_turns += 1
                    elif turn.kind == kinds.FINISHED:
                        seen.finished, seen.interrupted = True, turn.interrupted
                        seen.latency_ms = dict(turn.latency_ms)
                        self._open_turns -= 1
                    self._check_settled()
                elif kind == "pong":
                    if event.pong.edge_time < 0:
                        self._pong.set()
                        self._check_settled()
                    else:
                        self.result.lag_ms.append((time.monotonic() - event.pong.edge_time) * 1000)
                elif kind == "welcome":
                    self._welcome.set()
                elif kind == "error":
                    message = f"{edge_pb2.Error.Code.Name(event.error.code)}: {event.error.message}"
                    self.result.errors.append(message)
                    if event.error.turn_id:
                        self._turn(event.error.turn_id).error = message
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.result.failed = f"{exc.code().name}: {exc.details()}"
        finally:
            for event in (self._welcome, self._pong, self._settled):
                event.set()


def hello(device_id: str, pipeline: str, token: str = "") -> edge_pb2.Hello:
    return edge_pb2.Hello(
        device_id=device_id,
        token=token,
        pipeline=pipeline,
        audio_format=edge_pb2.AudioFormat(
            sample_rate=RATE, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
        ),
        agent_version=parley.__version__,
    )


async def connect_streams(
    address: str,
    plans: Sequence[StreamPlan],
    cycle: Cycle,
    *,
    pipeline: str,
    token: str = "",
    timeout: float = 30.0,
) -> list[LoadStream]:
    """Open one stream per plan (50 at a time) and wait for every Welcome."""
    streams = [
        LoadStream(address, plan, cycle, hello(f"load-{plan.index}", pipeline, token))
        for plan in plans
    ]
    try:
        for first in range(0, len(streams), 50):
            batch = streams[first : first + 50]
            await asyncio.gather(*(s.connect(timeout) for s in batch))
    except BaseException:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        raise
    return streams


async def drive(
    streams: Sequence[LoadStream], t0: float, settle_timeout: float = 30.0
) -> list[StreamResult]:
    """Run every opened stream from ``t0`` (monotonic clock) to its end; their results."""
    runs = (s.run(t0 + s.plan.offset_s, settle_timeout) for s in streams)
    return list(await asyncio.gather(*runs))
