"""The answer of a turn: the answer stage (``llm``, or ``speech_llm`` on the turn's
audio) streams text, which goes through the speech-text stage
(:mod:`server.speech_text`) sentence by sentence; each sentence goes to the TTS as soon
as it is complete, and each audio chunk to the edge as soon as it exists. A
``speech_llm`` without a TTS in its pipeline answers with audio itself: its audio goes
to the edge the same way, and its text (the transcript of that audio) through the
speech-text stage, so the turn keeps what was said sentence by sentence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from parley.config import ServerConfig, StageConfig
from protos import edge_pb2
from protos import workers_pb2 as wpb
from server import stage_clients
from server import worker_clients as clients
from server.latency import TurnLatency
from server.outbox import Emit
from server.spans import ending, engine_attributes, stage_span
from server.speech_text import SpeechText
from server.worker_clients import WorkerPool

if TYPE_CHECKING:
    from server.pipeline import Exchange, TurnInput, TurnResult

# The user's side of an earlier exchange whose words are unknown (a speech LLM that
# did not say what it heard): roles must still alternate.
UNHEARD = "(spoken; no transcript)"
SPEECH_FIRST_AUDIO = "speech_llm_first_audio"


def str_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def chat_messages(
    params: Mapping[str, Any],
    history: Sequence[Exchange],
    keep: int,
    text: str,
    images: Sequence[bytes],
    context: Sequence[str],
) -> list[wpb.ChatMessage]:
    """System prompt (with the context stages' text after it), the history as the user
    heard it, then the new turn's text and images.

    An exchange whose answer the user never heard has no assistant message; its words
    join the next user message, so roles still alternate (strict templates refuse two
    user messages in a row)."""
    messages = []
    system = "\n\n".join(x for x in (str(params.get("system_prompt", "")), *context) if x)
    if system:
        messages.append(wpb.ChatMessage(role="system", content=system))
    said: list[str] = []
    for exchange in list(history)[-keep:] if keep > 0 else []:
        said.append(exchange.user or UNHEARD)
        if exchange.assistant.strip():
            messages.append(wpb.ChatMessage(role="user", content="\n".join(said)))
            messages.append(wpb.ChatMessage(role="assistant", content=exchange.assistant))
            said = []
    content = "\n".join(x for x in (*said, text) if x)
    messages.append(wpb.ChatMessage(role="user", content=content, images=list(images)))
    return messages


@dataclass(frozen=True)
class Piece:
    """Part of an answer stage's stream, whatever its kind."""

    text: str = ""
    pcm: bytes = b""
    sample_rate: int = 0
    model_seconds: float = 0.0
    finish_reason: str = ""
    heard: str = ""


@dataclass
class AnswerPlan:
    """The answer stage and the TTS that speaks it (None: a speech LLM's own audio),
    their pools, and their keys in the latency record."""

    stage: StageConfig
    pool: WorkerPool
    key: str
    tts: StageConfig | None
    tts_pool: WorkerPool | None
    tts_key: str
    server: ServerConfig

    @property
    def speaks_itself(self) -> bool:
        return self.tts is None

    @property
    def history_turns(self) -> int:
        return int(self.stage.params.get("history_turns", self.server.history_turns))

    @property
    def text_language(self) -> str:
        """pysbd's language code for the speech-text stage's sentence rules."""
        params = self.tts.params if self.tts is not None else self.stage.params
        return str(params.get("text_language", "en"))

    def request_messages(
        self, turn: TurnInput, text: str, context: Sequence[str]
    ) -> list[wpb.ChatMessage]:
        images = [jpeg for _, jpeg in turn.frames[-1:]] if self.stage.params.get("vision") else []
        return chat_messages(
            self.stage.params, turn.history, self.history_turns, text, images, context
        )


async def answer(
    plan: AnswerPlan,
    turn: TurnInput,
    latency: TurnLatency,
    emit: Emit,
    result: TurnResult,
    context: Sequence[str],
    ready: str | None,
) -> None:
    """Run the answer stage (its inputs were ready at mark ``ready``) and the TTS at
    once: sentences flow from one to the other through a queue."""
    first_output = SPEECH_FIRST_AUDIO if plan.speaks_itself else "first_sentence"
    latency.segment(plan.key, ready, first_output)
    if plan.tts is not None:
        latency.segment(plan.tts_key, "first_sentence", "tts_first_audio")
    latency.segment(
        "send", "tts_first_audio" if plan.tts else SPEECH_FIRST_AUDIO, "first_audio_sent"
    )
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    pieces, attributes = _pieces(plan, turn, result.transcript, context)
    answer_span = stage_span(turn.trace, plan.key, plan.stage, attributes)

    async def produce() -> None:
        with ending(answer_span):
            try:
                await _generate(plan, pieces, answer_span, turn, latency, emit, result, sentences)
            finally:
                sentences.put_nowait(None)

    tts_span: trace.Span = trace.INVALID_SPAN
    if plan.tts is not None and plan.tts_pool is not None:
        voice = str(plan.tts.params.get("voice", ""))
        attributes = {**engine_attributes(plan.tts_pool.config), "parley.tts.voice": voice}
        tts_span = stage_span(turn.trace, plan.tts_key, plan.tts, attributes)

    async def speak() -> None:
        with ending(tts_span):
            await _speak(plan, tts_span, sentences, turn, latency, emit, result)

    try:
        async with asyncio.TaskGroup() as group:
            # Each call is made inside its span, so the worker's spans nest under it.
            with trace.use_span(answer_span):
                group.create_task(produce())
            if plan.tts is not None:
                with trace.use_span(tts_span):
                    group.create_task(speak())
    except ExceptionGroup as failed:  # the first failure is the one to report
        raise failed.exceptions[0] from None


def _pieces(
    plan: AnswerPlan, turn: TurnInput, transcript: str, context: Sequence[str]
) -> tuple[AsyncIterator[Piece], dict[str, Any]]:
    """The answer stage's call, as a stream of pieces, and its span's attributes."""
    params, pool = plan.stage.params, plan.pool.config
    temperature = float(params.get("temperature", 0.7))
    max_tokens = int(params.get("max_tokens", 256))
    attributes = {
        **engine_attributes(pool),
        "gen_ai.operation.name": "chat",
        "gen_ai.system": pool.engine,
        "gen_ai.request.model": str(pool.options.get("model", "")),
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.max_tokens": max_tokens,
    }
    timeout = plan.server.llm_timeout_s
    if plan.stage.kind == "llm":
        request = wpb.LlmRequest(
            messages=plan.request_messages(turn, transcript, context),
            temperature=temperature,
            max_tokens=max_tokens,
            options=str_map(params.get("options")),
        )

        async def text() -> AsyncIterator[Piece]:
            async for delta in clients.generate(plan.pool, request, timeout=timeout):
                yield Piece(delta.text, model_seconds=delta.model_seconds,
                            finish_reason=delta.finish_reason)  # fmt: skip

        return text(), attributes
    config = wpb.SpeechLlmConfig(
        messages=plan.request_messages(turn, "", context),
        temperature=temperature,
        max_tokens=max_tokens,
        options=str_map(params.get("options")),
        sample_rate=turn.sample_rate,
        audio_out=plan.speaks_itself,
        voice=str(params.get("voice", "")),
    )
    attributes["parley.speech_llm.audio_out"] = plan.speaks_itself

    async def speech() -> AsyncIterator[Piece]:
        async for delta in stage_clients.speak_with(
            plan.pool, config, turn.pcm, timeout=timeout, stage=plan.stage.name
        ):
            yield Piece(delta.text, delta.pcm, delta.sample_rate, delta.model_seconds,
                        delta.finish_reason, delta.heard)  # fmt: skip

    return speech(), attributes


async def _generate(
    plan: AnswerPlan,
    pieces: AsyncIterator[Piece],
    span: trace.Span,
    turn: TurnInput,
    latency: TurnLatency,
    emit: Emit,
    result: TurnResult,
    sentences: asyncio.Queue[str | None],
) -> None:
    stage = SpeechText(language=plan.text_language)
    started, tokens, first, finish, seq = time.perf_counter(), 0, 0.0, "", 0
    model_seconds = 0.0

    def forward(answer: str, ready: list[str]) -> None:
        result.response, result.reasoning = stage.response, stage.reasoning
        if answer:  # the edge gets the answer's text (no reasoning, no tokens)
            response = edge_pb2.ResponseText(turn_id=turn.turn_id, delta=answer)
            emit(edge_pb2.ServerEvent(response=response))
        if plan.speaks_itself:  # its own audio says these sentences
            result.spoken.extend(ready)
            return
        for sentence in ready:
            if "first_sentence" not in latency.marks:
                latency.mark("first_sentence")
                latency.model_time(plan.key, model_seconds)
            sentences.put_nowait(sentence)

    async for piece in pieces:
        finish = piece.finish_reason or finish
        model_seconds = piece.model_seconds or model_seconds
        latency.use(plan.key, model_seconds, total=True)  # the worker's figure is cumulative
        if piece.heard:
            result.transcript = piece.heard.strip()
        if piece.text:
            tokens += 1
            first = first or time.perf_counter() - started
            latency.mark("llm_first_token")
            forward(*stage.feed(piece.text))
        if piece.pcm and plan.speaks_itself:
            if SPEECH_FIRST_AUDIO not in latency.marks:
                latency.mark(SPEECH_FIRST_AUDIO)
                latency.model_time(plan.key, model_seconds)
            _send_audio(turn, latency, emit, result, seq, piece.pcm, piece.sample_rate,
                        sentence=len(result.spoken))  # fmt: skip
            seq += 1
    forward(*stage.flush())
    emit(edge_pb2.ServerEvent(response=edge_pb2.ResponseText(turn_id=turn.turn_id, final=True)))
    if plan.speaks_itself:
        emit(audio_event(turn.turn_id, seq, b"", result.audio_rate or 16000, last=True))
    elapsed = time.perf_counter() - started
    span.set_attributes(
        {
            "gen_ai.usage.output_tokens": tokens,
            "gen_ai.response.finish_reasons": [finish or "stop"],
            "parley.llm.ttft_s": first,
            "parley.llm.tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        }
    )


def _send_audio(
    turn: TurnInput,
    latency: TurnLatency,
    emit: Emit,
    result: TurnResult,
    seq: int,
    pcm: bytes,
    rate: int,
    *,
    sentence: int,
) -> None:
    """One chunk of answer audio to the edge, kept in the turn and counted as sent for
    ``sentence`` (for what-was-heard after a barge-in)."""
    result.audio_rate = rate
    result.audio += pcm
    result.playback.sent(sentence, len(pcm) / 2 / (rate or 1))
    emit(
        audio_event(turn.turn_id, seq, pcm, rate), on_sent=lambda: latency.mark("first_audio_sent")
    )


async def _speak(
    plan: AnswerPlan,
    span: trace.Span,
    sentences: asyncio.Queue[str | None],
    turn: TurnInput,
    latency: TurnLatency,
    emit: Emit,
    result: TurnResult,
) -> None:
    assert plan.tts is not None and plan.tts_pool is not None
    params = plan.tts.params
    config = wpb.TtsConfig(
        voice=str(params.get("voice", "")),
        speed=float(params.get("speed", 0.0)),
        options=str_map(params.get("options")),
    )
    started, characters, seq = time.perf_counter(), 0, 0

    async def texts() -> AsyncIterator[str]:
        nonlocal characters
        while (sentence := await sentences.get()) is not None:
            characters += len(sentence)
            result.spoken.append(sentence)  # what the TTS is asked to say
            yield sentence

    async for audio in clients.synthesize(
        plan.tts_pool, config, texts(), timeout=plan.server.tts_timeout_s
    ):
        latency.use(plan.tts_key, audio.model_seconds)
        if not audio.pcm:
            continue
        if "tts_first_audio" not in latency.marks:
            latency.mark("tts_first_audio")
            latency.model_time(plan.tts_key, audio.model_seconds)
            span.set_attribute("parley.tts.ttfb_s", time.perf_counter() - started)
        _send_audio(turn, latency, emit, result, seq, audio.pcm, audio.sample_rate,
                    sentence=audio.sentence)  # fmt: skip
        seq += 1
    emit(audio_event(turn.turn_id, seq, b"", result.audio_rate or 16000, last=True))
    span.set_attributes(
        {
            "parley.tts.characters": characters,
            "parley.tts.audio_seconds": len(result.audio) / 2 / (result.audio_rate or 1),
        }
    )


def audio_event(
    turn_id: str, seq: int, pcm: bytes, rate: int, *, last: bool = False, resume: bool = False
) -> edge_pb2.ServerEvent:
    fmt = edge_pb2.AudioFormat(sample_rate=rate, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE)
    return edge_pb2.ServerEvent(
        audio=edge_pb2.AudioOut(
            turn_id=turn_id, seq=seq, pcm=pcm, format=fmt, last=last, resume=resume
        )
    )
