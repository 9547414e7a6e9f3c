"""Clients for the speech_llm, analyse, retrieve and caption workers, on the pools of
server/worker_clients.py: deadlines, failover to another address when a call failed
before any response, and gRPC errors turned into StageError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from protos import workers_pb2 as pb
from protos import workers_pb2_grpc as pb_grpc
from server.worker_clients import StageError, WorkerPool, _stage_error

Reply = TypeVar("Reply")


async def _calls(
    pool: WorkerPool,
    stage: str,
    open_call: Callable[[grpc.aio.Channel], AsyncIterator[Reply]],
) -> AsyncIterator[Reply]:
    """The replies of ``open_call(channel)`` on the pool, failing over once to another
    address when a worker could not be reached before any reply came."""
    tried: list[str] = []
    while True:
        address, channel = pool.pick(exclude=tried)
        replies = open_call(channel)
        received = False
        try:
            async for reply in replies:
                received = True
                yield reply
            pool.mark_up(address)
            return
        except grpc.aio.AioRpcError as exc:
            error = _stage_error(stage, address, exc)
            if received or not error.unavailable:
                raise error from None
            pool.mark_down(address)
            tried.append(address)
            if len(tried) >= min(2, len(pool.config.addresses)):
                raise error from None
        finally:
            cancel = getattr(replies, "cancel", None)
            if cancel is not None:
                cancel()


async def _unary(
    pool: WorkerPool,
    stage: str,
    call: Callable[[grpc.aio.Channel, float], Awaitable[Reply]],
    timeout: float,
) -> Reply:
    """``call(channel, timeout)``: one reply, with the failover of :func:`_calls`."""

    async def one(channel: grpc.aio.Channel) -> AsyncIterator[Reply]:
        yield await call(channel, timeout)

    (reply,) = [reply async for reply in _calls(pool, stage, one)]
    return reply


async def analyse(
    pool: WorkerPool, request: pb.AnalyseRequest, *, timeout: float, stage: str = "analyse"
) -> pb.AnalyseResult:
    return await _unary(
        pool,
        stage,
        lambda channel, deadline: pb_grpc.AnalyseStub(channel).Analyse(request, timeout=deadline),
        timeout,
    )


async def retrieve(
    pool: WorkerPool, request: pb.RetrieveRequest, *, timeout: float, stage: str = "retrieve"
) -> pb.RetrieveResult:
    return await _unary(
        pool,
        stage,
        lambda channel, deadline: pb_grpc.RetrieveStub(channel).Retrieve(request, timeout=deadline),
        timeout,
    )


async def caption(
    pool: WorkerPool, request: pb.CaptionRequest, *, timeout: float, stage: str = "caption"
) -> pb.CaptionResult:
    return await _unary(
        pool,
        stage,
        lambda channel, deadline: pb_grpc.CaptionStub(channel).Caption(request, timeout=deadline),
        timeout,
    )


async def speak_with(
    pool: WorkerPool,
    config: pb.SpeechLlmConfig,
    pcm: bytes,
    *,
    timeout: float,
    chunk_bytes: int = 32000,
    stage: str = "speech_llm",
) -> AsyncIterator[pb.SpeechLlmDelta]:
    """Send the turn's audio to a speech LLM; stream its answer. Fails over once if
    nothing was received yet."""

    async def requests() -> AsyncIterator[pb.SpeechLlmRequest]:
        yield pb.SpeechLlmRequest(config=config)
        for start in range(0, len(pcm), chunk_bytes):
            yield pb.SpeechLlmRequest(audio=pcm[start : start + chunk_bytes])

    def open_call(channel: grpc.aio.Channel) -> AsyncIterator[pb.SpeechLlmDelta]:
        return pb_grpc.SpeechLlmStub(channel).Generate(requests(), timeout=timeout)

    async for delta in _calls(pool, stage, open_call):
        yield delta


__all__ = ["StageError", "analyse", "caption", "retrieve", "speak_with"]
