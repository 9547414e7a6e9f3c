"""gRPC servicers for the speech_llm, analyse, retrieve and caption kinds: protobuf <->
engine types and engine timing, with workers/service.py's error mapping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from protos import workers_pb2 as pb
from protos import workers_pb2_grpc as pb_grpc
from workers import kinds
from workers.errors import InvalidRequest
from workers.service import _abort, _closing, _EngineServicer, _first, _InputClock


def _audio(request: pb.SpeechLlmRequest) -> bytes:
    if request.WhichOneof("request") != "audio":
        raise InvalidRequest("only audio may follow the config message")
    return request.audio


class SpeechLlmServicer(_EngineServicer, pb_grpc.SpeechLlmServicer):
    stage = "speech_llm"
    engine: kinds.SpeechLlmEngine

    async def Generate(
        self,
        request_iterator: AsyncIterator[pb.SpeechLlmRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.SpeechLlmDelta]:
        config = await _first(request_iterator, "config", context)
        request = kinds.SpeechLlmRequest(
            messages=tuple(
                kinds.Message(m.role, m.content, tuple(m.images)) for m in config.messages
            ),
            sample_rate=config.sample_rate or 16000,
            temperature=config.temperature,
            max_tokens=config.max_tokens or 256,
            audio_out=config.audio_out,
            voice=config.voice or None,
            options=dict(config.options),
        )
        clock = _InputClock()
        finish, count, samples, rate, writing = "", 0, 0, 1, 0.0
        try:
            deltas = self.engine.run(request, clock.follow(request_iterator, _audio))
            async for delta in _closing(deltas):
                finish = delta.finish_reason or finish
                if not (delta.text or delta.pcm or delta.heard):
                    continue
                count += 1
                samples += len(delta.pcm) // 2
                rate = delta.sample_rate or rate
                ended = clock.ended_at
                engine = 0.0 if ended is None else time.perf_counter() - ended - writing
                sending = time.perf_counter()
                yield pb.SpeechLlmDelta(
                    text=delta.text,
                    pcm=delta.pcm,
                    sample_rate=delta.sample_rate,
                    heard=delta.heard,
                    model_seconds=max(engine, 0.0),
                )
                writing += time.perf_counter() - sending
        except Exception as exc:
            await _abort(context, exc)
        ended = clock.ended_at
        model_seconds = 0.0 if ended is None else time.perf_counter() - ended - writing
        self.annotate(deltas=count, model_seconds=model_seconds, audio_seconds=samples / rate)
        yield pb.SpeechLlmDelta(
            final=True, model_seconds=model_seconds, finish_reason=finish or "stop"
        )


class AnalyseServicer(_EngineServicer, pb_grpc.AnalyseServicer):
    stage = "analyse"
    engine: kinds.AnalyseEngine

    async def Analyse(
        self, request: pb.AnalyseRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnalyseResult:
        which = request.WhichOneof("input")
        if which is None:
            await _abort(context, InvalidRequest("nothing to analyse: set audio, text or image"))
        value: Any = getattr(request, which)
        analyse = kinds.AnalyseRequest(
            sample_rate=request.sample_rate or 16000,
            options=dict(request.options),
            **{which: value},
        )
        started = time.perf_counter()
        try:
            labels = await self.engine.run(analyse)
        except Exception as exc:
            await _abort(context, exc)
        model_seconds = time.perf_counter() - started
        best = labels[0].label if labels else ""
        self.annotate(model_seconds=model_seconds, input=which, label=best)
        return pb.AnalyseResult(
            labels=[pb.Label(label=x.label, score=x.score) for x in labels],
            model_seconds=model_seconds,
        )


class RetrieveServicer(_EngineServicer, pb_grpc.RetrieveServicer):
    stage = "retrieve"
    engine: kinds.RetrieveEngine

    async def Retrieve(
        self, request: pb.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetrieveResult:
        if not request.query.strip():
            await _abort(context, InvalidRequest("an empty query"))
        query = kinds.RetrieveRequest(request.query, request.top_k, dict(request.options))
        started = time.perf_counter()
        try:
            passages = await self.engine.run(query)
        except Exception as exc:
            await _abort(context, exc)
        model_seconds = time.perf_counter() - started
        self.annotate(model_seconds=model_seconds, passages=len(passages))
        return pb.RetrieveResult(
            passages=[
                pb.Passage(text=p.text, source=p.source, chunk=p.chunk, score=p.score)
                for p in passages
            ],
            model_seconds=model_seconds,
        )


class CaptionServicer(_EngineServicer, pb_grpc.CaptionServicer):
    stage = "caption"
    engine: kinds.CaptionEngine

    async def Caption(
        self, request: pb.CaptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CaptionResult:
        if not request.image:
            await _abort(context, InvalidRequest("no image to caption"))
        caption = kinds.CaptionRequest(
            image=request.image,
            prompt=request.prompt or None,
            max_tokens=request.max_tokens or 96,
            options=dict(request.options),
        )
        started = time.perf_counter()
        try:
            text = await self.engine.run(caption)
        except Exception as exc:
            await _abort(context, exc)
        model_seconds = time.perf_counter() - started
        self.annotate(model_seconds=model_seconds, caption_chars=len(text))
        return pb.CaptionResult(text=text, model_seconds=model_seconds)
