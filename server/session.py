"""One Session per Converse stream: audio in -> turns -> pipeline -> events out.

The session owns its background work: at most one running turn task (a new turn, or
speech during the answer, cancels it: barge-in), plus the store writes it started.
Everything is cancelled and awaited when the stream ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import numpy as np
from opentelemetry.trace import format_trace_id

from parley import otlp
from parley.audio import AudioConverter, float_to_pcm16_bytes
from parley.config import VadConfig
from parley.telemetry import Telemetry
from protos import edge_pb2
from server.edge_clock import RATE, EdgeClock
from server.latency import TurnLatency
from server.outbox import Outbox
from server.pipeline import Exchange, Listening, PipelineRunner, TurnInput, TurnResult
from server.store import TurnStore
from server.turn_feed import TurnFeed
from server.turn_trace import TurnTrace
from server.turns import SpeechStarted, TurnDetector, TurnEnded
from server.vad import SileroVad
from server.vad_scheduler import BatchScheduler
from server.worker_clients import StageError

log = logging.getLogger(__name__)

# Audio goes to the STT worker in pieces of at least this much (fewer, larger messages;
# what is left when the turn closes is sent at once).
STREAM_AHEAD_SAMPLES = RATE // 10
RECENT_TURNS = 16
ErrorCode = edge_pb2.Error.Code


@dataclass
class ActiveTurn:
    turn_id: str
    task: asyncio.Task[None]
    latency: TurnLatency
    playing: bool = False
    finished: bool = False


@dataclass(frozen=True)
class Outcome:
    status: str  # done | failed | interrupted
    error: str = ""
    stage: str = ""


class Session:
    def __init__(
        self,
        *,
        session_id: str,
        hello: edge_pb2.Hello,
        runner: PipelineRunner,
        store: TurnStore,
        vad: BatchScheduler[SileroVad],
        vad_config: VadConfig,
        emit: Outbox,
        telemetry: Telemetry,
    ) -> None:
        self.session_id = session_id
        self.device_id = hello.device_id
        self.pipeline = runner.pipeline.name
        self.runner = runner
        self.store = store
        self.emit = emit
        fmt = hello.audio_format
        self.converter = AudioConverter(fmt.sample_rate, fmt.channels)
        self.vad_config = vad_config
        self.detector = TurnDetector(vad_config, vad.model, RATE)
        # Windows scored with every other session's; turn events come back on its task.
        self.turns = TurnFeed(
            self.detector, vad.open(), self._on_detector_event, self._stream_ahead
        )
        self.clock = EdgeClock()
        self.samples_in = 0
        self.history: list[Exchange] = []
        self.frames: collections.deque[tuple[float, bytes]] = collections.deque(maxlen=64)
        self.turn_index = 0
        self.active: ActiveTurn | None = None
        # The open turn's transcription call, fed while the user speaks, and how far.
        self.listening: Listening | None = None
        self.streamed_upto = 0
        # Recent turns' latency records, for playback reports that arrive late (bounded:
        # a device's stream can live for days).
        self.latencies: collections.OrderedDict[str, TurnLatency] = collections.OrderedDict()
        self.telemetry = telemetry
        self.tracer = telemetry.tracer("parley.server")
        self.opening: TurnTrace | None = None  # the trace of the turn being spoken
        self.opening_id = ""
        # Recent turns' trace ids: edge spans must belong to one of them.
        self.trace_ids: collections.deque[str] = collections.deque(maxlen=RECENT_TURNS)
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ inbound

    async def run(self, events: AsyncIterator[edge_pb2.EdgeEvent]) -> None:
        # Connect to this pipeline's workers now, not on the first turn.
        pools = (self.runner.stt_pool, self.runner.llm_pool, self.runner.tts_pool)
        warming = [asyncio.create_task(pool.connect()) for pool in pools]
        try:
            async for event in events:
                await self.handle(event)
            # End of stream: the converter's look-ahead, then whatever turn is open.
            for detected in await self.turns.finish(self.converter.flush()):
                await self._on_detector_event(detected)
        finally:
            for task in warming:
                task.cancel()
            await self.close()

    async def handle(self, event: edge_pb2.EdgeEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "audio":
            await self._on_audio(event.audio)
        elif kind == "playback":
            await self._on_playback(event.playback)
        elif kind == "frame":
            self.frames.append((event.frame.capture_time, event.frame.jpeg))
        elif kind == "ping":  # answered once all audio before it is handled
            await self.turns.caught_up()
            self.emit(edge_pb2.ServerEvent(pong=edge_pb2.Pong(edge_time=event.ping.edge_time)))
        elif kind == "spans":
            self._on_spans(event.spans)
        else:
            self._error(ErrorCode.BAD_REQUEST, f"unexpected {kind or 'empty'} message")

    async def _on_audio(self, chunk: edge_pb2.AudioChunk) -> None:
        try:
            samples = self.converter.convert(chunk.pcm)
        except ValueError as exc:
            self._error(ErrorCode.BAD_REQUEST, f"bad audio chunk {chunk.seq}: {exc}")
            return
        self.clock.add(self.samples_in, chunk.capture_time)
        self.samples_in += len(samples)
        await self.turns.feed(samples)  # its events arrive through _on_detector_event

    def _stream_ahead(self) -> None:
        """Send the open turn's audio to the STT worker as soon as it is certain to
        belong to the turn (so little is left to send when the turn closes)."""
        if self.listening is None:
            return
        upto = self.detector.committed_sample
        if upto - self.streamed_upto >= STREAM_AHEAD_SAMPLES:
            audio = self.detector.audio_between(self.streamed_upto, upto)
            self.listening.stream.feed(float_to_pcm16_bytes(audio))
            self.streamed_upto = upto

    def _on_spans(self, spans: edge_pb2.Spans) -> None:
        """The edge's finished spans: re-export those that belong to this session's turns."""
        try:
            decoded = otlp.decode(spans.otlp)
        except ValueError as exc:
            self._error(ErrorCode.BAD_REQUEST, f"bad spans message: {exc}")
            return
        ours = [s for s in decoded if format_trace_id(s.context.trace_id) in self.trace_ids]
        self.telemetry.export_foreign(ours)

    async def _on_detector_event(self, event: SpeechStarted | TurnEnded) -> None:
        if isinstance(event, SpeechStarted):
            self._barge_in()
            self._open_turn(event)
        else:
            self._barge_in()
            self._start_turn(event)

    def _open_turn(self, started: SpeechStarted) -> None:
        """Speech started: the turn gets its id and trace, and its STT call opens."""
        if self.listening is not None:  # cannot happen: turns do not overlap
            self.listening.stream.cancel()
        self.opening_id = str(uuid.uuid4())
        self.opening = TurnTrace(
            self.tracer,
            turn_id=self.opening_id,
            session_id=self.session_id,
            device_id=self.device_id,
            pipeline=self.pipeline,
            speech_started_ago_s=(self.samples_in - started.start_sample) / RATE,
        )
        if self.opening.trace_id:
            self.trace_ids.append(self.opening.trace_id)
        self.listening = self.runner.listen(self.opening, RATE, self.vad_config.max_turn_s)
        self.streamed_upto = started.audio_start_sample
        self.emit(
            edge_pb2.ServerEvent(
                turn=edge_pb2.TurnEvent(
                    turn_id=self.opening_id,
                    kind=edge_pb2.TurnEvent.SPEECH_STARTED,
                    edge_time=self.clock.at(started.start_sample) or 0.0,
                    traceparent=self.opening.traceparent,
                )
            )
        )

    async def _on_playback(self, playback: edge_pb2.PlaybackEvent) -> None:
        latency = self.latencies.get(playback.turn_id)
        active = self.active
        if active is not None and active.turn_id == playback.turn_id:
            active.playing = playback.kind == edge_pb2.PlaybackEvent.STARTED
        if latency is None or playback.kind != edge_pb2.PlaybackEvent.STARTED:
            return
        if latency.first_played_edge is None:
            latency.first_played_edge = playback.edge_time
            if latency.done_at is not None:  # the turn is stored already: add the figure
                v2v = latency.voice_to_voice_ms
                if v2v is not None:
                    self._spawn(
                        self.store.update_latency(
                            playback.turn_id,
                            {"voice_to_voice_ms": v2v, "first_played_edge_s": playback.edge_time},
                        )
                    )

    # ------------------------------------------------------------------ turns

    def _barge_in(self) -> None:
        """New speech while an answer is being made or played: stop it."""
        active = self.active
        if active is None or (active.finished and not active.playing):
            return
        if not active.task.done():
            active.task.cancel()
        self.emit(
            edge_pb2.ServerEvent(
                stop=edge_pb2.StopPlayback(turn_id=active.turn_id, reason="barge-in")
            )
        )
        active.playing = False
        active.finished = True

    def _start_turn(self, ended: TurnEnded) -> None:
        turn_id, turn_trace = self.opening_id, self.opening
        self.opening = None
        if turn_trace is None:  # cannot happen: SpeechStarted always comes first
            raise RuntimeError("a turn ended that never started")
        turn_trace.speech_ended(
            {
                "parley.vad.speech_start_s": ended.start_sample / RATE,
                "parley.vad.speech_end_s": ended.end_sample / RATE,
                "parley.vad.threshold": self.vad_config.threshold,
                "parley.vad.min_silence_ms": self.vad_config.min_silence_ms,
                "parley.vad.forced": ended.forced,
            }
        )
        latency = TurnLatency()
        latency.endpointing_s = max(0.0, (ended.decided_sample - ended.end_sample) / RATE)
        latency.speech_end_edge = self.clock.at(ended.end_sample)
        audio = ended.audio
        pcm = float_to_pcm16_bytes(audio) if audio.dtype != np.int16 else audio.tobytes()
        start_edge = self.clock.at(ended.start_sample) or 0.0
        frames = [(captured, jpeg) for captured, jpeg in self.frames if captured >= start_edge]
        listening, self.listening = self.listening, None
        if listening is not None:  # send the rest of the turn's audio
            listening.stream.feed(pcm[2 * (self.streamed_upto - ended.audio_start_sample) :])
        turn = TurnInput(turn_id, pcm, RATE, tuple(self.history), frames, turn_trace, listening)
        index = self.turn_index
        self.turn_index += 1
        self.latencies[turn_id] = latency
        while len(self.latencies) > RECENT_TURNS:
            self.latencies.popitem(last=False)
        task = asyncio.create_task(self._run_turn(turn, index, latency), name=f"turn-{turn_id}")
        self.active = ActiveTurn(turn_id, task, latency)

    async def _run_turn(self, turn: TurnInput, index: int, latency: TurnLatency) -> None:
        result = TurnResult()
        status, error, stage = "done", "", ""
        turn_event = edge_pb2.TurnEvent(
            turn_id=turn.turn_id,
            kind=edge_pb2.TurnEvent.SPEECH_ENDED,
            edge_time=latency.speech_end_edge or 0.0,
            traceparent=turn.trace.traceparent if turn.trace else "",
        )
        stored = asyncio.create_task(
            self.store.begin_turn(
                turn.turn_id,
                self.session_id,
                index,
                self.pipeline,
                turn.pcm,
                turn.sample_rate,
                turn.frames,
            )
        )
        try:
            self.emit(edge_pb2.ServerEvent(turn=turn_event))
            await self.runner.run(turn, latency, self.emit, result)
        except asyncio.CancelledError:
            status = "interrupted"
        except StageError as exc:
            status, error, stage = "failed", exc.message, exc.stage
            code = ErrorCode.STAGE_UNAVAILABLE if exc.unavailable else ErrorCode.STAGE_FAILED
            self._error(code, str(exc), turn_id=turn.turn_id, stage=exc.stage)
        except Exception as exc:  # a bug: report it, keep the session
            log.exception("turn %s failed", turn.turn_id)
            status, error, stage = "failed", f"internal error: {exc}", "server"
            self._error(ErrorCode.INTERNAL, error, turn_id=turn.turn_id)
        finally:
            if turn.listening is not None:
                turn.listening.stream.cancel()  # no-op once it has answered
            latency.done()
            if self.active is not None and self.active.turn_id == turn.turn_id:
                self.active.finished = True
            if result.transcript:
                self.history.append(Exchange(result.transcript, result.response))
            # The store write is owned by the session (close() waits for it), so it
            # lands even if this task is cancelled again while waiting for it.
            outcome = Outcome(status, error, stage)
            saving = self._spawn(self._store_turn(stored, turn, outcome, result, latency))
        await asyncio.shield(saving)  # FINISHED means "stored"
        self.emit(
            edge_pb2.ServerEvent(
                turn=edge_pb2.TurnEvent(
                    turn_id=turn.turn_id,
                    kind=edge_pb2.TurnEvent.FINISHED,
                    latency_ms=latency.record(),
                    interrupted=outcome.status == "interrupted",
                )
            )
        )

    async def _store_turn(
        self,
        begun: asyncio.Task[None],
        turn: TurnInput,
        outcome: Outcome,
        result: TurnResult,
        latency: TurnLatency,
    ) -> None:
        try:
            await self.emit.drained()  # the answer is on the wire: its marks are final
            record = latency.record()
            if turn.trace is not None:
                turn.trace.finish(status=outcome.status, error=outcome.error, latency_ms=record)
            await begun
            await self.store.finish_turn(
                turn.turn_id,
                status=outcome.status,
                transcript=result.transcript,
                response=result.response,
                latency=record,
                error=outcome.error,
                error_stage=outcome.stage,
                trace_id=turn.trace.trace_id if turn.trace else "",
                answer_pcm=bytes(result.audio),
                answer_rate=result.audio_rate,
            )
        except Exception:
            log.exception("could not store turn %s", turn.turn_id)

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _error(
        self,
        code: edge_pb2.Error.Code,
        message: str,
        *,
        turn_id: str = "",
        stage: str = "",
    ) -> None:
        self.emit(
            edge_pb2.ServerEvent(
                error=edge_pb2.Error(code=code, message=message, turn_id=turn_id, stage=stage)
            )
        )

    async def close(self) -> None:
        """Cancel the running turn and wait for every store write to land."""
        await self.turns.close()
        if self.listening is not None:
            self.listening.stream.cancel()
            self.listening.span.end()
        if self.opening is not None:
            self.opening.finish(status="interrupted", error="stream ended", latency_ms={})
        if self.active is not None and not self.active.task.done():
            self.active.task.cancel()
            await asyncio.gather(self.active.task, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
