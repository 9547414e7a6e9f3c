"""Run one turn across the workers: STT -> LLM (streamed) -> sentences -> TTS (streamed).

The LLM and the TTS run concurrently: each sentence goes to the TTS worker as soon as
the LLM completes it, and each audio chunk goes to the edge as soon as the TTS makes it.
Partial results are kept in ``TurnResult`` as they arrive, so a turn cancelled by
barge-in or failed by a worker is still stored with what it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from parley.config import PipelineConfig, PoolConfig, ServerConfig
from protos import edge_pb2
from protos import workers_pb2 as wpb
from server import worker_clients as clients
from server.latency import TurnLatency
from server.outbox import Emit
from server.sentences import SentenceSplitter
from server.turn_trace import TurnTrace
from server.worker_clients import WorkerPool

MIN_RETRY_S = 0.5  # a failed STT call is retried only with at least this much time left


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of the conversation, for the LLM's history."""

    user: str
    assistant: str


@dataclass
class Listening:
    """A turn's transcription call, opened when speech started, and its ``stt`` span."""

    stream: clients.SttStream
    span: trace.Span


@dataclass
class TurnInput:
    turn_id: str
    pcm: bytes  # PCM16LE mono
    sample_rate: int
    history: Sequence[Exchange] = ()
    # (edge capture time, JPEG) of the camera frames seen during the turn, oldest first
    frames: Sequence[tuple[float, bytes]] = ()
    trace: TurnTrace | None = None
    # The transcription call already fed with the turn's audio while the user spoke
    # (None: send ``pcm`` in one go).
    listening: Listening | None = None


@dataclass
class TurnResult:
    transcript: str = ""
    response: str = ""
    audio: bytearray = field(default_factory=bytearray)  # PCM16LE mono answer audio
    audio_rate: int = 0


def _str_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _engine(pool: PoolConfig) -> dict[str, str]:
    return {"parley.engine": pool.engine, "parley.model": str(pool.options.get("model", ""))}


def _stage_span(turn: TurnInput, name: str, attributes: Mapping[str, Any]) -> trace.Span:
    if turn.trace is None:
        return trace.INVALID_SPAN
    return turn.trace.child(name, attributes)


class PipelineRunner:
    def __init__(
        self,
        pipeline: PipelineConfig,
        pools: Mapping[str, WorkerPool],
        server: ServerConfig,
    ) -> None:
        self.pipeline = pipeline
        self.server = server
        self.stt_pool = pools[pipeline.stt.pool]
        self.llm_pool = pools[pipeline.llm.pool]
        self.tts_pool = pools[pipeline.tts.pool]

    @property
    def history_turns(self) -> int:
        return int(self.pipeline.llm.params.get("history_turns", self.server.history_turns))

    async def run(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        """Run the turn, filling ``result``; raises StageError when a stage fails."""
        await self._transcribe(turn, latency, emit, result)
        if result.transcript.strip():
            await self._answer(turn, latency, emit, result)

    def _stt_config(self, sample_rate: int) -> wpb.SttConfig:
        params = self.pipeline.stt.params
        return wpb.SttConfig(
            sample_rate=sample_rate,
            language=str(params.get("language", "")),
            prompt=str(params.get("prompt", "")),
        )

    def listen(self, turn_trace: TurnTrace, sample_rate: int, max_turn_s: float) -> Listening:
        """Open the transcription call (and its span) for a turn that has just started."""
        span = turn_trace.child("stt", _engine(self.stt_pool.config))
        with trace.use_span(span):  # the call's client span is a child of ``stt``
            stream = clients.SttStream(
                self.stt_pool,
                self._stt_config(sample_rate),
                timeout=max_turn_s + self.server.stt_timeout_s,
            )
        return Listening(stream, span)

    async def _transcribe(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        listening = turn.listening
        span = (
            listening.span if listening else _stage_span(turn, "stt", _engine(self.stt_pool.config))
        )
        # The stage's deadline runs from the end of speech (the VAD's decision), not
        # from when the call was opened at the start of speech.
        deadline = time.monotonic() + self.server.stt_timeout_s
        with trace.use_span(span), ending(span):
            stt = None
            if listening is not None:
                try:
                    stt = await listening.stream.finish(timeout=self.server.stt_timeout_s)
                except clients.StageError as exc:
                    # The worker went away or stalled while the user spoke: send the
                    # whole turn again (to another worker of the pool if there is one),
                    # in the time that is left.
                    if not exc.unavailable or deadline - time.monotonic() < MIN_RETRY_S:
                        raise
            if stt is None:
                stt = await clients.transcribe(
                    self.stt_pool,
                    turn.pcm,
                    self._stt_config(turn.sample_rate),
                    timeout=max(MIN_RETRY_S, deadline - time.monotonic()),
                )
            span.set_attributes(
                {
                    "parley.stt.audio_seconds": stt.audio_seconds,
                    "parley.stt.transcript_chars": len(stt.text.strip()),
                    "parley.model_seconds": stt.model_seconds,
                }
            )
        latency.mark("stt_done")
        latency.model_time("stt", stt.model_seconds)
        result.transcript = stt.text.strip()
        emit(
            edge_pb2.ServerEvent(
                transcript=edge_pb2.Transcript(
                    turn_id=turn.turn_id, text=result.transcript, final=True
                )
            )
        )

    def _messages(self, turn: TurnInput, transcript: str) -> list[wpb.ChatMessage]:
        params = self.pipeline.llm.params
        messages = []
        if params.get("system_prompt"):
            messages.append(wpb.ChatMessage(role="system", content=str(params["system_prompt"])))
        keep = self.history_turns
        for exchange in list(turn.history)[-keep:] if keep > 0 else []:
            messages.append(wpb.ChatMessage(role="user", content=exchange.user))
            messages.append(wpb.ChatMessage(role="assistant", content=exchange.assistant))
        images = [jpeg for _, jpeg in turn.frames[-1:]] if params.get("vision") else []
        messages.append(wpb.ChatMessage(role="user", content=transcript, images=images))
        return messages

    async def _answer(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        """LLM and TTS at once: sentences flow from one to the other through a queue."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        llm = self._llm_request(turn, result.transcript)
        llm_span = _stage_span(turn, "llm", self._llm_attributes(llm))
        tts_span = _stage_span(
            turn, "tts", {**_engine(self.tts_pool.config), "parley.tts.voice": self._voice}
        )

        async def produce() -> None:
            with ending(llm_span):
                try:
                    await self._generate(turn, llm, llm_span, latency, emit, result, sentences)
                finally:
                    sentences.put_nowait(None)

        async def speak() -> None:
            with ending(tts_span):
                await self._speak(turn, tts_span, sentences, latency, emit, result)

        try:
            async with asyncio.TaskGroup() as group:
                # Each call is made inside its span, so the worker's spans nest under it.
                with trace.use_span(llm_span):
                    group.create_task(produce())
                with trace.use_span(tts_span):
                    group.create_task(speak())
        except ExceptionGroup as failed:  # the first failure is the one to report
            raise failed.exceptions[0] from None

    def _llm_request(self, turn: TurnInput, transcript: str) -> wpb.LlmRequest:
        params = self.pipeline.llm.params
        return wpb.LlmRequest(
            messages=self._messages(turn, transcript),
            temperature=float(params.get("temperature", 0.7)),
            max_tokens=int(params.get("max_tokens", 256)),
            options=_str_map(params.get("options")),
        )

    def _llm_attributes(self, request: wpb.LlmRequest) -> dict[str, Any]:
        """GenAI semantic conventions where they fit."""
        pool = self.llm_pool.config
        return {
            **_engine(pool),
            "gen_ai.operation.name": "chat",
            "gen_ai.system": pool.engine,
            "gen_ai.request.model": str(pool.options.get("model", "")),
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.max_tokens": request.max_tokens,
        }

    async def _generate(
        self,
        turn: TurnInput,
        request: wpb.LlmRequest,
        span: trace.Span,
        latency: TurnLatency,
        emit: Emit,
        result: TurnResult,
        sentences: asyncio.Queue[str | None],
    ) -> None:
        splitter = SentenceSplitter()
        started, tokens, first, finish = time.perf_counter(), 0, 0.0, ""
        async for delta in clients.generate(
            self.llm_pool, request, timeout=self.server.llm_timeout_s
        ):
            finish = delta.finish_reason or finish
            if not delta.text:
                continue
            tokens += 1
            first = first or time.perf_counter() - started
            latency.mark("llm_first_token")
            result.response += delta.text
            emit(
                edge_pb2.ServerEvent(
                    response=edge_pb2.ResponseText(turn_id=turn.turn_id, delta=delta.text)
                )
            )
            for sentence in splitter.feed(delta.text):
                if "first_sentence" not in latency.marks:
                    latency.mark("first_sentence")
                    latency.model_time("llm", delta.model_seconds)
                sentences.put_nowait(sentence)
        rest = splitter.flush()
        if rest:
            latency.mark("first_sentence")
            sentences.put_nowait(rest)
        emit(edge_pb2.ServerEvent(response=edge_pb2.ResponseText(turn_id=turn.turn_id, final=True)))
        elapsed = time.perf_counter() - started
        span.set_attributes(
            {
                "gen_ai.usage.output_tokens": tokens,
                "gen_ai.response.finish_reasons": [finish or "stop"],
                "parley.llm.ttft_s": first,
                "parley.llm.tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            }
        )

    @property
    def _voice(self) -> str:
        return str(self.pipeline.tts.params.get("voice", ""))

    async def _speak(
        self,
        turn: TurnInput,
        span: trace.Span,
        sentences: asyncio.Queue[str | None],
        latency: TurnLatency,
        emit: Emit,
        result: TurnResult,
    ) -> None:
        params = self.pipeline.tts.params
        config = wpb.TtsConfig(
            voice=self._voice,
            speed=float(params.get("speed", 0.0)),
            options=_str_map(params.get("options")),
        )
        started, characters, seq = time.perf_counter(), 0, 0

        async def texts() -> AsyncIterator[str]:
            nonlocal characters
            while (sentence := await sentences.get()) is not None:
                characters += len(sentence)
                yield sentence

        async for audio in clients.synthesize(
            self.tts_pool, config, texts(), timeout=self.server.tts_timeout_s
        ):
            if not audio.pcm:
                continue
            if "tts_first_audio" not in latency.marks:
                latency.mark("tts_first_audio")
                latency.model_time("tts", audio.model_seconds)
                span.set_attribute("parley.tts.ttfb_s", time.perf_counter() - started)
            result.audio_rate = audio.sample_rate
            result.audio += audio.pcm
            emit(
                _audio_event(turn.turn_id, seq, audio.pcm, audio.sample_rate),
                on_sent=lambda: latency.mark("first_audio_sent"),
            )
            seq += 1
        emit(_audio_event(turn.turn_id, seq, b"", result.audio_rate or 16000, last=True))
        span.set_attributes(
            {
                "parley.tts.characters": characters,
                "parley.tts.audio_seconds": len(result.audio) / 2 / (result.audio_rate or 1),
            }
        )


@contextlib.contextmanager
def ending(span: trace.Span) -> Iterator[None]:
    """End ``span`` when the block ends; a failure marks it as an error, a cancellation
    (barge-in) as cancelled."""
    try:
        yield
    except asyncio.CancelledError:
        span.set_attribute("parley.cancelled", True)
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        raise
    finally:
        span.end()


def _audio_event(
    turn_id: str, seq: int, pcm: bytes, rate: int, *, last: bool = False
) -> edge_pb2.ServerEvent:
    fmt = edge_pb2.AudioFormat(sample_rate=rate, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE)
    return edge_pb2.ServerEvent(
        audio=edge_pb2.AudioOut(turn_id=turn_id, seq=seq, pcm=pcm, format=fmt, last=last)
    )
