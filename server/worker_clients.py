"""Clients for the stage workers: pools of channels, deadlines, failover, and gRPC
errors turned into StageError for the pipeline.

A pool spreads calls round-robin across its addresses. An address whose call fails
with UNAVAILABLE is skipped for a short back-off, and a call that failed before any
response arrived is retried once on another address.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc

from parley.config import PoolConfig
from parley.security import dial_worker
from protos import workers_pb2 as pb
from protos import workers_pb2_grpc as pb_grpc

BACKOFF_S = 2.0


class StageError(Exception):
    """A stage failed; ``unavailable`` means no worker could be reached at all."""

    def __init__(self, stage: str, message: str, *, unavailable: bool = False) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message
        self.unavailable = unavailable


def _stage_error(stage: str, address: str, exc: grpc.aio.AioRpcError) -> StageError:
    code = exc.code()
    unavailable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    detail = exc.details() or code.name
    if code is grpc.StatusCode.UNAVAILABLE:
        detail = f"worker at {address} unavailable ({detail})"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        detail = f"worker at {address} missed its deadline"
    elif code is grpc.StatusCode.UNAUTHENTICATED:
        detail = f"worker at {address} refused the server ({detail}): check the pool's token"
    return StageError(stage, detail, unavailable=unavailable)


def _retry_elsewhere(
    pool: WorkerPool,
    stage: str,
    address: str,
    exc: grpc.aio.AioRpcError,
    tried: list[str],
    received: bool = False,
) -> None:
    """After a call to ``address`` failed: raise its StageError, unless the call may be
    made again on another address (the worker was unreachable, nothing had come back
    yet, and fewer than two addresses were tried). An unreachable address is marked down."""
    error = _stage_error(stage, address, exc)
    if error.unavailable:
        pool.mark_down(address)
    tried.append(address)
    if received or not error.unavailable or len(tried) >= min(2, len(pool.config.addresses)):
        raise error from None


class WorkerPool:
    def __init__(
        self, config: PoolConfig, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
    ) -> None:
        self.config = config
        self.stage = config.stage
        # ``interceptors``: tracing (a client span per call, trace context in metadata);
        # the pool's security adds TLS and its token (parley/security.py)
        self._channels = {
            address: dial_worker(address, config.security, interceptors)
            for address in config.addresses
        }
        self._order = itertools.cycle(config.addresses)
        self._down_until: dict[str, float] = {}

    def pick(self, exclude: Sequence[str] = ()) -> tuple[str, grpc.aio.Channel]:
        """Next address in turn that is not backing off (or, if all are, the one that
        recovers first, so a restarted worker is found again)."""
        now = time.monotonic()
        candidates = [a for a in self.config.addresses if a not in exclude] or list(
            self.config.addresses
        )
        for _ in range(len(self.config.addresses)):
            address = next(self._order)
            if address in candidates and self._down_until.get(address, 0.0) <= now:
                return address, self._channels[address]
        address = min(candidates, key=lambda a: self._down_until.get(a, 0.0))
        return address, self._channels[address]

    async def connect(self, timeout: float = 5.0) -> None:
        """Open the connections ahead of the first call (best effort: a worker that is
        not up yet is simply connected to later)."""
        for channel in self._channels.values():
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout)
            except (TimeoutError, grpc.aio.AioRpcError):
                continue

    def mark_down(self, address: str) -> None:
        self._down_until[address] = time.monotonic() + BACKOFF_S

    def mark_up(self, address: str) -> None:
        self._down_until.pop(address, None)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


@dataclass(frozen=True)
class SttResult:
    text: str
    language: str
    audio_seconds: float
    model_seconds: float


async def transcribe(
    pool: WorkerPool,
    pcm: bytes,
    config: pb.SttConfig,
    *,
    timeout: float,
    chunk_bytes: int = 32000,
) -> SttResult:
    """Send a whole turn's PCM16 mono audio; return the final transcript."""

    async def requests() -> AsyncIterator[pb.SttRequest]:
        yield pb.SttRequest(config=config)
        for start in range(0, len(pcm), chunk_bytes):
            yield pb.SttRequest(audio=pcm[start : start + chunk_bytes])

    tried: list[str] = []
    while True:
        address, channel = pool.pick(exclude=tried)
        call = pb_grpc.SttStub(channel).Transcribe(requests(), timeout=timeout)
        try:
            result = await _final_transcript(call, address)
            pool.mark_up(address)
            return result
        except grpc.aio.AioRpcError as exc:
            _retry_elsewhere(pool, "stt", address, exc, tried)


async def _final_transcript(call: AsyncIterator[pb.SttResponse], address: str) -> SttResult:
    """Read the call to its end (so it, and its span, finish cleanly); the final result."""
    final = None
    async for reply in call:
        if reply.final:
            final = reply
    if final is None:
        raise StageError("stt", f"worker at {address} ended without a final transcript")
    return SttResult(final.text, final.language, final.audio_seconds, final.model_seconds)


class SttStream:
    """A transcription call opened when the user starts speaking and fed while they
    speak, so that at the end of the turn only the last moment of audio and the
    engine's own work stand between the VAD's decision and the transcript."""

    def __init__(
        self,
        pool: WorkerPool,
        config: pb.SttConfig,
        *,
        timeout: float,
    ) -> None:
        self.pool = pool
        self.address, channel = pool.pick()
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._config = config
        self._call = pb_grpc.SttStub(channel).Transcribe(self._requests(), timeout=timeout)
        self._result = asyncio.create_task(self._read(), name="stt-stream")
        # A stream cancelled by barge-in may have failed unobserved: that is fine.
        self._result.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _requests(self) -> AsyncIterator[pb.SttRequest]:
        yield pb.SttRequest(config=self._config)
        while (pcm := await self._audio.get()) is not None:
            yield pb.SttRequest(audio=pcm)

    async def _read(self) -> SttResult:
        try:
            result = await _final_transcript(self._call, self.address)
        except grpc.aio.AioRpcError as exc:
            error = _stage_error("stt", self.address, exc)
            if error.unavailable:
                self.pool.mark_down(self.address)
            raise error from None
        self.pool.mark_up(self.address)
        return result

    def feed(self, pcm: bytes) -> None:
        if pcm:
            self._audio.put_nowait(pcm)

    async def finish(self, timeout: float | None = None) -> SttResult:
        """End the audio and wait up to ``timeout`` seconds for the final transcript
        (StageError on failure; a worker that misses the time is marked down)."""
        self._audio.put_nowait(None)
        try:
            async with asyncio.timeout(timeout):
                return await self._result
        except TimeoutError:
            self.cancel()
            self.pool.mark_down(self.address)
            raise StageError(
                "stt",
                f"worker at {self.address} missed its deadline "
                f"({timeout:g} s after the end of speech)",
                unavailable=True,
            ) from None

    def cancel(self) -> None:
        self._call.cancel()
        self._result.cancel()


async def generate(
    pool: WorkerPool,
    request: pb.LlmRequest,
    *,
    timeout: float,
) -> AsyncIterator[pb.LlmDelta]:
    """Stream the answer's deltas; fails over once if nothing was received yet."""
    tried: list[str] = []
    while True:
        address, channel = pool.pick(exclude=tried)
        call = pb_grpc.LlmStub(channel).Generate(request, timeout=timeout)
        received = False
        try:
            async for delta in call:
                received = True
                yield delta
            pool.mark_up(address)
            return
        except grpc.aio.AioRpcError as exc:
            _retry_elsewhere(pool, "llm", address, exc, tried, received)
        finally:
            call.cancel()


async def synthesize(
    pool: WorkerPool,
    config: pb.TtsConfig,
    texts: AsyncIterator[str],
    *,
    timeout: float,
) -> AsyncIterator[pb.TtsAudio]:
    """Stream texts in and audio out over one call. A call that fails as unreachable
    before any audio came back is made again on another worker of the pool (once),
    given first the texts the failed call had taken: nothing is lost. Once audio has
    arrived there is no failover (the edge has heard part of the answer)."""
    pending: asyncio.Queue[str | None] = asyncio.Queue()
    taken: list[str] = []
    ended = False

    async def pump() -> None:
        # Read ``texts`` in a task of its own: a failed call cancels its request
        # stream, which must not end ``texts`` for the next call.
        try:
            async for text in texts:
                pending.put_nowait(text)
        finally:
            pending.put_nowait(None)

    async def requests() -> AsyncIterator[pb.TtsRequest]:
        nonlocal ended
        yield pb.TtsRequest(config=config)
        for earlier in list(taken):
            yield pb.TtsRequest(text=earlier)
        while not ended:
            text = await pending.get()
            if text is None:
                ended = True
                break
            taken.append(text)
            yield pb.TtsRequest(text=text)

    reader = asyncio.create_task(pump(), name="tts-texts")
    tried: list[str] = []
    try:
        while True:
            address, channel = pool.pick(exclude=tried)
            call = pb_grpc.TtsStub(channel).Synthesize(requests(), timeout=timeout)
            received = False
            try:
                async for audio in call:
                    received = True
                    yield audio
                pool.mark_up(address)
                break
            except grpc.aio.AioRpcError as exc:
                _retry_elsewhere(pool, "tts", address, exc, tried, received)
            finally:
                call.cancel()
        if ended:
            await reader  # if ``texts`` failed: its error, not a short answer
    finally:
        reader.cancel()
