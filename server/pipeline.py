"""Run one turn through a pipeline's graph of stages (parley/pipeline_graph.py).

Every stage runs as soon as its inputs are done, so independent stages run at once:
``stt`` (fed while the user spoke), ``caption`` and ``analyse`` on the audio start at
the end of the turn; ``retrieve`` and text analysis start when the transcript is in;
the answer stage (``llm`` or ``speech_llm``) starts when all its inputs are done, and
streams into the TTS (server/answer.py). A transcript with no words
(:mod:`server.no_speech`) is not answered. A context stage (analyse, retrieve,
caption) that fails is stored with its error and the turn still answers; a failure of
stt, the answer stage or the TTS fails the turn (StageError). Partial results are kept
in ``TurnResult`` as they arrive, so a turn cancelled by barge-in or failed by a worker
is still stored with what it had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from parley.config import PipelineConfig, ServerConfig, StageConfig
from parley.kinds import ANSWER_KINDS, CONTEXT_KINDS
from protos import edge_pb2
from protos import workers_pb2 as wpb
from server import worker_clients as clients
from server.answer import AnswerPlan, answer
from server.context_stages import Skipped, StageOutput, context_text, run_context_stage
from server.latency import TurnLatency
from server.no_speech import is_no_speech
from server.outbox import Emit
from server.playback import AnswerPlayback
from server.spans import ending, engine_attributes, stage_span
from server.turn_trace import TurnTrace
from server.worker_clients import WorkerPool

log = logging.getLogger(__name__)
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
    # What stages report besides text, by stage (stored as Turn.outputs).
    outputs: dict[str, Any] = field(default_factory=dict)
    # Awaited once the inputs of the answer stage are done, before it starts (with the
    # transcript): the session settles an answer this turn's speech interrupted.
    before_answer: Callable[[str], Awaitable[None]] | None = None


@dataclass
class TurnResult:
    transcript: str = ""
    no_speech: bool = False  # the transcript has no words: not answered
    response: str = ""  # the answer's text without reasoning blocks
    reasoning: str = ""  # the LLM's reasoning blocks (not spoken, not remembered)
    spoken: list[str] = field(default_factory=list)  # the sentences sent to the TTS
    audio: bytearray = field(default_factory=bytearray)  # PCM16LE mono answer audio
    audio_rate: int = 0
    playback: AnswerPlayback = field(default_factory=AnswerPlayback)
    # The context stages' results (analyse labels, passages, captions), by stage name.
    stage_outputs: dict[str, StageOutput] = field(default_factory=dict)


class _NoSpeech(Exception):
    """The transcript has no words: the rest of the turn is not run."""


def latency_keys(stages: Mapping[str, StageConfig]) -> dict[str, str]:
    """Each stage's key in the latency record: its kind, or its name for a second
    stage of a kind."""
    keys: dict[str, str] = {}
    for name, stage in stages.items():
        keys[name] = stage.kind if stage.kind not in keys.values() else name
    return keys


class PipelineRunner:
    def __init__(
        self,
        pipeline: PipelineConfig,
        pools: Mapping[str, WorkerPool],
        server: ServerConfig,
    ) -> None:
        self.pipeline = pipeline
        self.server = server
        self.stage_pools = {name: pools[s.pool] for name, s in pipeline.stages.items()}
        self.keys = latency_keys(pipeline.stages)
        stage, tts = pipeline.answer, pipeline.tts
        self.plan = AnswerPlan(
            stage=stage,
            pool=self.stage_pools[stage.name],
            key=self.keys[stage.name],
            tts=tts,
            tts_pool=self.stage_pools[tts.name] if tts else None,
            tts_key=self.keys[tts.name] if tts else "tts",
            server=server,
        )

    def pools(self) -> list[WorkerPool]:
        """The pools this pipeline calls, each once."""
        return list({id(p): p for p in self.stage_pools.values()}.values())

    def _stt_config(self, sample_rate: int) -> wpb.SttConfig:
        params = self.pipeline.stt.params if self.pipeline.stt else {}
        return wpb.SttConfig(
            sample_rate=sample_rate,
            language=str(params.get("language", "")),
            prompt=str(params.get("prompt", "")),
        )

    def listen(
        self, turn_trace: TurnTrace, sample_rate: int, max_turn_s: float
    ) -> Listening | None:
        """Open the transcription call (and its span) for a turn that has just started
        (None for a pipeline without an stt stage)."""
        stt = self.pipeline.stt
        if stt is None:
            return None
        pool = self.stage_pools[stt.name]
        span = stage_span(turn_trace, self.keys[stt.name], stt, engine_attributes(pool.config))
        with trace.use_span(span):  # the call's client span is a child of ``stt``
            stream = clients.SttStream(
                pool,
                self._stt_config(sample_rate),
                timeout=max_turn_s + self.server.stt_timeout_s,
            )
        return Listening(stream, span)

    async def run(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        """Run the turn, filling ``result``; raises StageError when stt, the answer
        stage or the TTS fails."""
        latency.segments = {}
        finished = {
            name: asyncio.get_running_loop().create_future() for name in self.pipeline.stages
        }
        try:
            async with asyncio.TaskGroup() as group:
                for stage in self.pipeline.stages.values():
                    if stage.kind == "tts":
                        continue  # runs with the answer stage, on its sentences
                    group.create_task(self._stage(stage, finished, turn, latency, emit, result))
        except ExceptionGroup as failed:
            if all(isinstance(e, _NoSpeech) for e in failed.exceptions):
                return
            first = next(e for e in failed.exceptions if not isinstance(e, _NoSpeech))
            raise first from None

    async def _stage(
        self,
        stage: StageConfig,
        finished: Mapping[str, asyncio.Future[None]],
        turn: TurnInput,
        latency: TurnLatency,
        emit: Emit,
        result: TurnResult,
    ) -> None:
        inputs = stage.inputs or ()
        await asyncio.gather(*(finished[name] for name in inputs))
        # The segment starts where its last input ended (the decision, without inputs).
        done_marks = [f"{self.keys[name]}_done" for name in inputs]
        done_marks = [m for m in done_marks if m in latency.marks]
        ready = max(done_marks, key=latency.marks.__getitem__) if done_marks else None
        if stage.kind == "stt":
            await self._transcribe(turn, latency, emit, result)
        elif stage.kind in CONTEXT_KINDS:
            await self._context(stage, ready, turn, latency, result)
        elif stage.kind in ANSWER_KINDS:
            context = [
                text
                for name in inputs
                if (out := result.stage_outputs.get(name)) is not None
                and (text := context_text(self.pipeline.stage(name), out))
            ]
            if turn.before_answer is not None:
                await turn.before_answer(result.transcript)
            await answer(self.plan, turn, latency, emit, result, context, ready)
        finished[stage.name].set_result(None)  # (a failure cancels the waiting stages)

    async def _transcribe(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        stt = self.pipeline.stt
        assert stt is not None
        key, pool = self.keys[stt.name], self.stage_pools[stt.name]
        latency.segment(key, None, f"{key}_done")
        listening = turn.listening
        span = (
            listening.span
            if listening
            else stage_span(turn.trace, key, stt, engine_attributes(pool.config))
        )
        # The stage's deadline runs from the end of speech (the VAD's decision), not
        # from when the call was opened at the start of speech.
        deadline = time.monotonic() + self.server.stt_timeout_s
        with trace.use_span(span), ending(span):
            heard = None
            if listening is not None:
                try:
                    heard = await listening.stream.finish(timeout=self.server.stt_timeout_s)
                except clients.StageError as exc:
                    # The worker went away or stalled while the user spoke: send the
                    # whole turn again (to another worker of the pool if there is one),
                    # in the time that is left.
                    if not exc.unavailable or deadline - time.monotonic() < MIN_RETRY_S:
                        raise
            if heard is None:
                heard = await clients.transcribe(
                    pool,
                    turn.pcm,
                    self._stt_config(turn.sample_rate),
                    timeout=max(MIN_RETRY_S, deadline - time.monotonic()),
                )
            span.set_attributes(
                {
                    "parley.stt.audio_seconds": heard.audio_seconds,
                    "parley.stt.transcript_chars": len(heard.text.strip()),
                    "parley.model_seconds": heard.model_seconds,
                }
            )
        latency.mark(f"{key}_done")
        latency.model_time(key, heard.model_seconds)
        latency.use(key, heard.model_seconds)
        result.transcript = heard.text.strip()
        emit(
            edge_pb2.ServerEvent(
                transcript=edge_pb2.Transcript(
                    turn_id=turn.turn_id, text=result.transcript, final=True
                )
            )
        )
        result.no_speech = is_no_speech(result.transcript)
        if result.no_speech:
            raise _NoSpeech

    async def _context(
        self,
        stage: StageConfig,
        ready: str | None,
        turn: TurnInput,
        latency: TurnLatency,
        result: TurnResult,
    ) -> None:
        """Run a context stage; its failure is stored, never raised."""
        key, pool = self.keys[stage.name], self.stage_pools[stage.name]
        latency.segment(key, ready, f"{key}_done")
        span = stage_span(turn.trace, key, stage, engine_attributes(pool.config))
        frame = turn.frames[-1][1] if turn.frames else None
        try:
            with trace.use_span(span), ending(span):
                output = await run_context_stage(
                    stage,
                    pool,
                    self.server,
                    pcm=turn.pcm,
                    sample_rate=turn.sample_rate,
                    transcript=result.transcript,
                    frame=frame,
                )
                span.set_attribute("parley.model_seconds", output.model_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            skipped = isinstance(exc, Skipped)
            if not skipped and not isinstance(exc, clients.StageError):
                log.warning("%s stage %s failed: %s", stage.kind, stage.name, exc)
            status = "skipped" if skipped else "failed"
            message = exc.message if isinstance(exc, clients.StageError) else str(exc)
            result.stage_outputs[stage.name] = StageOutput(
                stage.name, stage.kind, status, error=message
            )
            return
        latency.mark(f"{key}_done")
        latency.model_time(key, output.model_seconds)
        latency.use(key, output.model_seconds)
        result.stage_outputs[stage.name] = output
