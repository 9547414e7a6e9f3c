"""gRPC servicers for the STT, LLM and TTS stages (the other kinds are in
workers/service_kinds.py): protobuf <-> engine types, engine timing, and the one place
where engine exceptions become gRPC status codes.

Each response carries ``model_seconds`` measured here, around the engine, so the server
can split a stage's time into model time and transfer/queue time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from opentelemetry import trace

from protos import workers_pb2 as pb
from protos import workers_pb2_grpc as pb_grpc
from workers import engines
from workers.errors import (
    BadResponse,
    EngineUnavailable,
    InvalidRequest,
    MissingExtra,
    ModelNotFound,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.FAILED_PRECONDITION),
    (MissingExtra, grpc.StatusCode.FAILED_PRECONDITION),
    (BadResponse, grpc.StatusCode.FAILED_PRECONDITION),
    (EngineUnavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_for(exc: Exception) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("engine failed")
    await context.abort(code, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")  # context.abort raises


class _InputClock:
    """Counts the time an engine spends waiting for its streamed input, so that the
    time it spends working can be told apart."""

    def __init__(self) -> None:
        self.waiting = 0.0
        self.ended_at: float | None = None

    async def follow(
        self, source: AsyncIterator[Any], pick: Callable[[Any], T]
    ) -> AsyncIterator[T]:
        while True:
            started = time.perf_counter()
            try:
                item = await anext(source)
            except StopAsyncIteration:
                self.ended_at = time.perf_counter()
                return
            finally:
                self.waiting += time.perf_counter() - started
            yield pick(item)


async def _closing(stream: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Iterate ``stream`` and close it as soon as we stop (cancelled call, error), so an
    engine's cleanup (stopping a generation thread) runs now, not at garbage collection."""
    try:
        async for item in stream:
            yield item
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _describe(stage: str, name: str, engine: engines.Engine) -> pb.EngineInfo:
    return pb.EngineInfo(stage=stage, engine=name, model=str(getattr(engine, "model", "")))


async def _first(
    requests: AsyncIterator[Any], field: str, context: grpc.aio.ServicerContext
) -> Any:
    try:
        first = await anext(requests)
    except StopAsyncIteration:
        await _abort(context, InvalidRequest("empty request stream"))
    if first.WhichOneof("request") != field:
        await _abort(context, InvalidRequest(f"the first message must be a {field}"))
    return getattr(first, field)


def _audio(request: pb.SttRequest) -> bytes:
    if request.WhichOneof("request") != "audio":
        raise InvalidRequest("only audio may follow the config message")
    return request.audio


def _text(request: pb.TtsRequest) -> str:
    if request.WhichOneof("request") != "text":
        raise InvalidRequest("only text may follow the config message")
    return request.text


class _EngineServicer:
    """What the three servicers share: the engine, Describe, and span attributes."""

    stage = ""

    def __init__(self, engine: Any, name: str) -> None:
        self.engine, self.name = engine, name

    async def Describe(self, request: pb.DescribeRequest, context: Any) -> pb.EngineInfo:
        return _describe(self.stage, self.name, self.engine)

    def annotate(self, **values: float | int | str) -> None:
        """Attributes for this call's server span (made by the tracing interceptor)."""
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("parley.engine", self.name)
            span.set_attribute("parley.model", str(getattr(self.engine, "model", "")))
            span.set_attributes({f"parley.{key}": v for key, v in values.items()})


class SttServicer(_EngineServicer, pb_grpc.SttServicer):
    stage = "stt"
    engine: engines.SttEngine

    async def Transcribe(
        self, request_iterator: AsyncIterator[pb.SttRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SttResponse]:
        config = await _first(request_iterator, "config", context)
        request = engines.SttRequest(
            sample_rate=config.sample_rate or 16000,
            language=config.language or None,
            prompt=config.prompt or None,
        )
        clock = _InputClock()
        try:
            results = self.engine.run(request, clock.follow(request_iterator, _audio))
            async for result in _closing(results):
                ended = clock.ended_at
                model_seconds = 0.0 if ended is None else time.perf_counter() - ended
                if result.final:
                    self.annotate(
                        audio_seconds=result.audio_seconds,
                        model_seconds=model_seconds,
                        transcript_chars=len(result.text),
                    )
                yield pb.SttResponse(
                    text=result.text,
                    final=result.final,
                    language=result.language,
                    audio_seconds=result.audio_seconds,
                    model_seconds=model_seconds,
                )
        except Exception as exc:
            await _abort(context, exc)


class LlmServicer(_EngineServicer, pb_grpc.LlmServicer):
    stage = "llm"
    engine: engines.LlmEngine

    async def Generate(
        self, request: pb.LlmRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LlmDelta]:
        started = time.perf_counter()
        if not request.messages:
            await _abort(context, InvalidRequest("no messages"))
        llm_request = engines.LlmRequest(
            messages=tuple(
                engines.Message(m.role, m.content, tuple(m.images)) for m in request.messages
            ),
            temperature=request.temperature,
            max_tokens=request.max_tokens or 256,
            options=dict(request.options),
        )
        count, finish, writing = 0, "", 0.0
        try:
            async for delta in _closing(self.engine.run(llm_request)):
                finish = delta.finish_reason or finish
                if not delta.text:
                    continue
                count += 1
                # Engine time so far: not the time spent handing deltas to gRPC.
                engine = time.perf_counter() - started - writing
                sending = time.perf_counter()
                yield pb.LlmDelta(text=delta.text, tokens=count, model_seconds=engine)
                writing += time.perf_counter() - sending
        except Exception as exc:
            await _abort(context, exc)
        model_seconds = time.perf_counter() - started - writing
        self.annotate(tokens=count, model_seconds=model_seconds, finish_reason=finish or "stop")
        yield pb.LlmDelta(
            final=True, tokens=count, model_seconds=model_seconds, finish_reason=finish or "stop"
        )


class TtsServicer(_EngineServicer, pb_grpc.TtsServicer):
    stage = "tts"
    engine: engines.TtsEngine

    async def Synthesize(
        self, request_iterator: AsyncIterator[pb.TtsRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TtsAudio]:
        config = await _first(request_iterator, "config", context)
        request = engines.TtsRequest(
            voice=config.voice or None, speed=config.speed or None, options=dict(config.options)
        )
        clock = _InputClock()
        speech = _closing(self.engine.run(request, clock.follow(request_iterator, _text)))
        total, samples, rate = 0.0, 0, 1
        try:
            while True:
                started, waited = time.perf_counter(), clock.waiting
                try:
                    chunk = await anext(speech)
                except StopAsyncIteration:
                    break
                worked = time.perf_counter() - started - (clock.waiting - waited)
                total += max(worked, 0.0)
                samples += len(chunk.pcm) // 2
                rate = chunk.sample_rate or rate
                yield pb.TtsAudio(
                    pcm=chunk.pcm,
                    sample_rate=chunk.sample_rate,
                    sentence=chunk.sentence,
                    sentence_end=chunk.sentence_end,
                    model_seconds=max(worked, 0.0),
                )
        except Exception as exc:
            await _abort(context, exc)
        self.annotate(model_seconds=total, audio_seconds=samples / rate)


def servicers() -> dict[str, tuple[type, Callable[[Any, grpc.aio.Server], None], str]]:
    """stage kind -> (servicer class, function adding it to a server, service name)."""
    from workers import service_kinds as k

    return {
        "stt": (SttServicer, pb_grpc.add_SttServicer_to_server, "parley.workers.v1.Stt"),
        "llm": (LlmServicer, pb_grpc.add_LlmServicer_to_server, "parley.workers.v1.Llm"),
        "tts": (TtsServicer, pb_grpc.add_TtsServicer_to_server, "parley.workers.v1.Tts"),
        "speech_llm": (
            k.SpeechLlmServicer,
            pb_grpc.add_SpeechLlmServicer_to_server,
            "parley.workers.v1.SpeechLlm",
        ),
        "analyse": (
            k.AnalyseServicer,
            pb_grpc.add_AnalyseServicer_to_server,
            "parley.workers.v1.Analyse",
        ),
        "retrieve": (
            k.RetrieveServicer,
            pb_grpc.add_RetrieveServicer_to_server,
            "parley.workers.v1.Retrieve",
        ),
        "caption": (
            k.CaptionServicer,
            pb_grpc.add_CaptionServicer_to_server,
            "parley.workers.v1.Caption",
        ),
    }
