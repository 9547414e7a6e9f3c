"""One Session per Converse stream: audio in -> turns -> pipeline -> events out.

The session owns its background work: at most one running turn task (a new turn, or
speech while the answer is made or may still be playing, cancels it: barge-in), the
turns queued behind it, plus the store writes it started. Everything is cancelled and
awaited when the stream ends.

Two kinds of turn wait in line instead of barging in, and are answered in order: turns
found in the same audio (one long chunk holding several utterances, or a chunk that ends
one utterance and starts the next: the user spoke them before any answer could be
heard), and the speech that goes on after a turn was cut at ``max_turn_s``. The history
the LLM gets is what the user heard (:class:`server.playback.HeardTurn`), taken when a
turn starts running, so a turn in line sees the answers before it.

A long chunk is scored in pieces with a yield between them, so it cannot starve the
other sessions. Messages are checked against ``[limits]`` first
(:mod:`server.limits`), audio chunks by seq (:mod:`server.delivery`).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import numpy as np

from parley.audio import AudioConverter, float_to_pcm16_bytes
from parley.config import LimitsConfig, TurnConfig, VadConfig
from parley.telemetry import Telemetry
from protos import edge_pb2
from server.delivery import AudioReceipts
from server.edge_clock import RATE, EdgeClock
from server.endpointing import HISTORY, Endpointer
from server.inbound import Inbound
from server.interruption import ActiveTurn, BargeIn
from server.latency import TurnLatency
from server.outbox import Outbox
from server.pipeline import Exchange, Listening, PipelineRunner, TurnInput, TurnResult
from server.playback import AnswerPlayback, HeardTurn
from server.smart_turn import ClipScorer
from server.speculation import HeldEmit, Speculation, Speculator
from server.store import TurnStore
from server.turn_feed import TurnFeed
from server.turn_record import Outcome, TurnRecorder
from server.turn_trace import TurnTrace
from server.turns import (
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnPaused,
)
from server.vad import SileroVad
from server.vad_scheduler import BatchScheduler
from server.worker_clients import StageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Audio goes to the STT worker in pieces of at least this much (fewer, larger messages;
# what is left when the turn closes is sent at once).
STREAM_AHEAD_SAMPLES = RATE // 10
RECENT_TURNS = 16
HISTORY_KEEP = 256  # earlier turns kept for the LLM's history (it uses history_turns)
# Recent audio chunks' end positions kept, to tell which chunk a turn event came from.
CHUNKS_KEPT = 256
# gRPC ends the request stream the same way when the edge half-closes it and when the
# edge cancels or goes away; in the second case the handler's cancellation follows
# within a millisecond. The session waits this long before taking the end as a
# half-close (and the open speech as a turn).
END_GRACE_S = 0.1
ErrorCode = edge_pb2.Error.Code
_PLAYBACK_KINDS = {
    edge_pb2.PlaybackEvent.STARTED: "started",
    edge_pb2.PlaybackEvent.FINISHED: "finished",
    edge_pb2.PlaybackEvent.INTERRUPTED: "interrupted",
}


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
        limits: LimitsConfig | None = None,
        receipts: AudioReceipts | None = None,
        turn: TurnConfig | None = None,
        end_of_turn: BatchScheduler[ClipScorer] | None = None,
    ) -> None:
        """``turn``: when a turn ends (default: after [vad] min_silence_ms of silence);
        with strategy smart_turn, ``end_of_turn`` is the server's Smart Turn scorer."""
        self.session_id = session_id
        self.device_id = hello.device_id
        self.pipeline = runner.pipeline.name
        self.runner = runner
        self.store = store
        self.emit = emit
        fmt = hello.audio_format
        self.converter = AudioConverter(fmt.sample_rate, fmt.channels)
        self.vad_config = vad_config
        self.turn_config = turn = turn or TurnConfig()
        smart = turn.strategy == "smart_turn"
        history = HISTORY if smart else 0  # the end-of-turn model hears the last 8 s
        self.detector = TurnDetector(vad_config, vad.model, RATE, turn, history_samples=history)
        scorer = end_of_turn.open() if smart and end_of_turn is not None else None
        self.endpointer = Endpointer(turn, self.detector, scorer, self._on_detector_event)
        # Answers started at a pause, before the turn is confirmed ([turn] preemptive).
        self.speculator = Speculator(turn.preemptive)
        # Windows scored with every other session's; turn events come back on its task.
        self.turns = TurnFeed(
            self.detector, vad.open(), self._on_detector_event, self._after_vad_step
        )
        self.clock = EdgeClock()
        self.samples_in = 0
        self.history: collections.deque[HeardTurn] = collections.deque(maxlen=HISTORY_KEEP)
        limits = limits or LimitsConfig()
        self.receipts = receipts or AudioReceipts()
        self.inbound = Inbound(limits, fmt, self.receipts, emit, session_id)
        self.recorder = TurnRecorder(
            store, session_id=session_id, pipeline=self.pipeline, emit=emit
        )
        self.frames: collections.deque[tuple[float, bytes]] = collections.deque(
            maxlen=limits.max_frames_per_turn
        )
        self.turn_index = 0
        self.events_in = 0  # messages the edge sent after its Hello (any kind)
        self.active: ActiveTurn | None = None
        # Answers stopped by new speech, held until its words are known.
        self.barge_in = BargeIn(emit)
        self.queued: list[ActiveTurn] = []  # turns found in the same audio, in order
        self._chunks_taken = 0
        self._chunk_ends: collections.deque[int] = collections.deque(maxlen=CHUNKS_KEPT)
        # The open speech waits in line behind the turns before it: it began in the chunk
        # that ended the last turn, or it goes on after a max_turn_s cut.
        self._opening_waits = False
        # Where the last turn was cut at max_turn_s (-1: it was not).
        self.cut_at = -1
        self._flushed_upto: int | None = None  # set when the edge half-closed the stream
        # The open turn's transcription call, fed while the user speaks, and how far.
        self.listening: Listening | None = None
        self.streamed_upto = 0
        # Recent turns' latency records and answer playback, for playback reports that
        # arrive late and for barge-in (bounded: a device's stream can live for days).
        self.latencies: collections.OrderedDict[str, TurnLatency] = collections.OrderedDict()
        self.playbacks: collections.OrderedDict[str, AnswerPlayback] = collections.OrderedDict()
        self.telemetry = telemetry
        self.tracer = telemetry.tracer("parley.server")
        self.opening: TurnTrace | None = None  # the trace of the turn being spoken
        self.opening_id = ""
        # Recent turns' trace ids: edge spans must belong to one of them.
        self.trace_ids: collections.deque[str] = collections.deque(maxlen=RECENT_TURNS)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False  # close() ran (it may run twice)

    # ------------------------------------------------------------------ inbound

    async def run(self, events: AsyncIterator[edge_pb2.EdgeEvent | None]) -> None:
        """Take the stream's events until the edge half-closes it; then answer the turns
        already heard (the edge is waiting for them) and end."""
        # Connect to this pipeline's workers now, not on the first turn.
        warming = [asyncio.create_task(pool.connect()) for pool in self.runner.pools()]
        try:
            async for event in events:
                await self.handle(event)
            await asyncio.sleep(END_GRACE_S)
            # End of stream: the converter's look-ahead, then whatever turn is open.
            self._flushed_upto = self.samples_in + self.converter.held_back
            for detected in await self.turns.finish(self.converter.flush()):
                await self._on_detector_event(detected)
            await self._settle()
            # Every turn heard is stored: a reconnect resumes after all of this audio.
            self.receipts.advance(self._needed_from())
        finally:
            for task in warming:
                task.cancel()
            await self.close()

    async def _settle(self) -> None:
        """Wait until no turn is running or queued."""
        while pending := [t.task for t in self._turns() if not t.task.done()]:
            await asyncio.wait(pending)

    def _turns(self) -> list[ActiveTurn]:
        """The running turn, then those queued behind it."""
        return [*([self.active] if self.active is not None else []), *self.queued]

    async def handle(self, received: edge_pb2.EdgeEvent | None) -> None:
        self.events_in += 1
        event = self.inbound.admit(received)
        if event is None:  # dropped, and the edge told why
            return
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
        held = self.converter.held_back
        self.receipts.taken(chunk.seq, self.samples_in + held, whole=not self.converter.carrying)
        self._chunk_ends.append(self.samples_in)
        self._chunks_taken += 1
        # Its events arrive through _on_detector_event; the audio it finishes with is
        # acknowledged after its windows are scored (_after_vad_step).
        await self.turns.feed(samples)

    def _after_vad_step(self) -> None:
        """Windows were scored and their events handled: stream the open turn ahead and
        acknowledge the audio that is finished with."""
        self._stream_ahead()
        self._acknowledge()

    def _chunk_of(self, sample: int) -> int:
        """The index of the audio chunk that held the sample before position ``sample``
        (chunks older than the last CHUNKS_KEPT count as the oldest kept)."""
        ends = self._chunk_ends
        return self._chunks_taken - len(ends) + bisect.bisect_right(ends, sample - 1)

    def _needed_from(self) -> int:
        """Audio before this position is finished with: not in the open speech or its
        pre-roll, nor in an ended turn whose input is not stored yet."""
        detector = self.detector.needed_from if self._flushed_upto is None else self._flushed_upto
        return min([detector, *self.recorder.unstored.values()])

    def _acknowledge(self) -> None:
        self.receipts.advance(self._needed_from())
        due = self.receipts.ack_due()
        if due is not None:
            self.emit(edge_pb2.ServerEvent(audio_ack=edge_pb2.AudioAck(next_seq=due)))

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
        self.telemetry.export_foreign(self.inbound.spans(spans.otlp, self.trace_ids))

    async def _on_detector_event(self, event: TurnEvent) -> None:
        self.endpointer.observe(event)  # check points: the end-of-turn model may end it
        if isinstance(event, SpeechStarted):
            # Speech that starts in the chunk that ended the last turn was spoken before
            # any answer to it could be heard; speech that starts within a pause's
            # length of a max_turn_s cut is the same speech going on. Neither is the user
            # interrupting an answer: each is the next turn in line.
            turns = self._turns()
            in_backlog = bool(turns) and turns[-1].arrival == self._chunk_of(event.decided_sample)
            gap_ms = (event.start_sample - self.cut_at) * 1000 / RATE
            goes_on = self.cut_at >= 0 and gap_ms <= self.vad_config.min_silence_ms
            self._opening_waits = in_backlog or goes_on
            self.cut_at = -1
            self._open_turn(event, listen=not any(not t.task.done() for t in turns))
            if not self._opening_waits:
                self._barge_in()
        elif isinstance(event, TurnPaused):
            self._speculate(event)
        elif isinstance(event, SpeechResumed):
            self._unspeculate()
        elif isinstance(event, TurnEnded):
            if not self._opening_waits:
                self._barge_in()
            self._start_turn(event)
            self.cut_at = event.end_sample if event.forced else -1

    def _speculate(self, paused: TurnPaused) -> None:
        """A check point in the silence after the open turn's speech: with ``[turn]
        preemptive``, start answering it on the audio so far (held until the turn is
        confirmed: server/speculation.py). The transcription call fed while the user
        spoke is finished for it."""
        speculator = self.speculator
        if not speculator.enabled or speculator.current is not None or self.opening is None:
            return
        if self._opening_waits:  # it waits in line behind another answer anyway
            return
        post_roll = round(RATE * self.vad_config.post_roll_ms / 1000)
        end = min(self.detector.samples_fed, paused.end_sample + post_roll)
        pcm = float_to_pcm16_bytes(self.detector.audio_between(paused.audio_start_sample, end))
        listening, self.listening = self.listening, None
        if listening is not None:  # send the rest of the audio so far
            listening.stream.feed(pcm[2 * (self.streamed_upto - paused.audio_start_sample) :])
        frames = self._frames_since(paused.start_sample)
        history = self._heard_history()
        turn = TurnInput(self.opening_id, pcm, RATE, history, frames, self.opening, listening)
        turn.before_answer = functools.partial(self.barge_in.words, turn, self._heard_history)
        result = TurnResult(playback=AnswerPlayback(self.clock.now))
        speculator.start(paused, turn, result, self.emit, self.runner.run)

    def _unspeculate(self) -> None:
        """Speech resumed after a pause: drop the speculation, and open a new
        transcription call for the turn (the old one was finished for it)."""
        spec = self.speculator.discard("speech resumed")
        if spec is not None and spec.turn.listening is not None and self.opening is not None:
            self.listening = self.runner.listen(self.opening, RATE, self.vad_config.max_turn_s)
            self.streamed_upto = spec.paused.audio_start_sample  # sent again from the start

    def _frames_since(self, start_sample: int) -> list[tuple[float, bytes]]:
        start_edge = self.clock.at(start_sample) or 0.0
        return [(captured, jpeg) for captured, jpeg in self.frames if captured >= start_edge]

    def _open_turn(self, started: SpeechStarted, *, listen: bool = True) -> None:
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
        if listen:  # a turn that will wait in line gets its audio in one go later
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
        answer = self.playbacks.get(playback.turn_id)
        if answer is not None and playback.kind in _PLAYBACK_KINDS:
            answer.report(_PLAYBACK_KINDS[playback.kind], playback.edge_time)
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
        """New speech while an answer is being made, waits in line or may still be
        playing: stop it (server/interruption.py)."""
        self.barge_in.stop(self.active, self.queued, self.playbacks, by=self.opening_id)

    def _start_turn(self, ended: TurnEnded) -> None:
        turn_id, turn_trace = self.opening_id, self.opening
        self.opening = None
        if turn_trace is None:  # cannot happen: SpeechStarted always comes first
            raise RuntimeError("a turn ended that never started")
        spec = self.speculator.take(ended)  # None: the answer starts now
        endpointing = self.endpointer.facts(ended)
        turn_trace.speech_ended(
            {
                "parley.vad.speech_start_s": ended.start_sample / RATE,
                "parley.vad.speech_end_s": ended.end_sample / RATE,
                "parley.vad.threshold": self.vad_config.threshold,
                "parley.vad.min_silence_ms": self.vad_config.min_silence_ms,
                "parley.vad.forced": ended.forced,
                "parley.turn.strategy": endpointing.strategy,
                "parley.turn.decided_by": endpointing.decided_by,
            }
        )
        latency = spec.latency if spec is not None else TurnLatency()
        latency.figures.update(self.speculator.figures())
        latency.endpointing_s = max(0.0, (ended.decided_sample - ended.end_sample) / RATE)
        latency.endpointing = endpointing.record()
        latency.speech_end_edge = self.clock.at(ended.end_sample)
        audio = ended.audio
        pcm = float_to_pcm16_bytes(audio) if audio.dtype != np.int16 else audio.tobytes()
        frames = self._frames_since(ended.start_sample)
        listening, self.listening = self.listening, None
        if listening is not None:  # send the rest of the turn's audio
            listening.stream.feed(pcm[2 * (self.streamed_upto - ended.audio_start_sample) :])
        if spec is None:
            turn = TurnInput(turn_id, pcm, RATE, (), frames, turn_trace, listening)
            turn.before_answer = functools.partial(self.barge_in.words, turn, self._heard_history)
            result = TurnResult(playback=AnswerPlayback(self.clock.now))
            gate = HeldEmit(self.emit, holding=False)
        else:  # answered already: what is stored is the whole turn
            turn, result, gate = spec.turn, spec.result, spec.gate
            turn.pcm, turn.frames = pcm, frames
        turn.outputs["vad"] = {  # where speech starts and ends in the stored input audio
            "speech_start_s": round((ended.start_sample - ended.audio_start_sample) / RATE, 3),
            "speech_end_s": round((ended.end_sample - ended.audio_start_sample) / RATE, 3),
        }
        turn.outputs["endpointing"] = endpointing.output()
        index = self.turn_index
        self.turn_index += 1
        self.latencies[turn_id] = latency
        self.playbacks[turn_id] = result.playback
        while len(self.latencies) > RECENT_TURNS:
            self.latencies.popitem(last=False)
        while len(self.playbacks) > RECENT_TURNS:
            self.playbacks.popitem(last=False)
        # Once the turn's input is stored, the edge may forget its audio (and what
        # came before it, if nothing else still needs that).
        taken = self.receipts.point(self._needed_from())
        begun = self.recorder.begin(
            turn, index, ended.audio_start_sample, (self.device_id, self.receipts.epoch, taken)
        )
        ahead = [t for t in self._turns() if not t.task.done()]
        after = ahead[-1].task if self._opening_waits and ahead else None
        self._opening_waits = False
        task = asyncio.create_task(
            self._run_turn(turn, latency, result, gate, begun, after, spec), name=f"turn-{turn_id}"
        )
        arrival = self._chunk_of(ended.decided_sample)
        entry = ActiveTurn(turn_id, task, latency, result, gate, arrival=arrival)
        if after is None:
            self.active = entry
        else:
            self.queued.append(entry)

    async def _wait_in_line(
        self, turn_id: str, latency: TurnLatency, ahead: asyncio.Task[None]
    ) -> None:
        """A turn in line (found in the same audio as the one before, or going on after
        a max_turn_s cut) waits for the answer before it."""
        await asyncio.wait([ahead])
        entry = next(t for t in self.queued if t.turn_id == turn_id)
        self.queued.remove(entry)
        self.active = entry
        latency.decision_at = time.perf_counter()  # timed from when it starts

    def _heard_history(self) -> tuple[Exchange, ...]:
        return tuple(Exchange(heard.user, heard.answer) for heard in self.history)

    async def _run_turn(
        self,
        turn: TurnInput,
        latency: TurnLatency,
        result: TurnResult,
        gate: HeldEmit,
        stored: asyncio.Task[None],
        after: asyncio.Task[None] | None = None,
        speculation: Speculation | None = None,
    ) -> None:
        status, error, stage = "done", "", ""
        turn_event = edge_pb2.TurnEvent(
            turn_id=turn.turn_id,
            kind=edge_pb2.TurnEvent.SPEECH_ENDED,
            edge_time=latency.speech_end_edge or 0.0,
            traceparent=turn.trace.traceparent if turn.trace else "",
        )
        try:
            self.emit(edge_pb2.ServerEvent(turn=turn_event))
            if after is not None:
                await self._wait_in_line(turn.turn_id, latency, after)
            if speculation is not None:  # committed: what it made goes out now
                await speculation.answer()
            else:
                turn.history = self._heard_history()
                await self.runner.run(turn, latency, gate, result)
            if result.no_speech:
                status = "no_speech"
                no_speech = edge_pb2.TurnEvent(
                    turn_id=turn.turn_id, kind=edge_pb2.TurnEvent.NO_SPEECH
                )
                self.emit(edge_pb2.ServerEvent(turn=no_speech))
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
            self.queued = [t for t in self.queued if t.turn_id != turn.turn_id]
            if turn.listening is not None:
                turn.listening.stream.cancel()  # no-op once it has answered
            latency.done()
            if (result.transcript or result.spoken) and not result.no_speech:
                self.history.append(HeardTurn(result.transcript, result.spoken, result.playback))
            # The store write is owned by the session (close() waits for it), so it
            # lands even if this task is cancelled again while waiting for it.
            outcome = Outcome(status, error, stage)
            saving = self._spawn(self.recorder.finish(stored, turn, outcome, result, latency))
        stored_ok = await asyncio.shield(saving)  # FINISHED says whether it was stored
        self.emit(
            edge_pb2.ServerEvent(
                turn=edge_pb2.TurnEvent(
                    turn_id=turn.turn_id,
                    kind=edge_pb2.TurnEvent.FINISHED,
                    latency_ms=latency.record(),
                    interrupted=outcome.status == "interrupted",
                    stored=stored_ok,
                )
            )
        )
        resumed = self.barge_in.settle(turn.turn_id, no_speech=outcome.status == "no_speech")
        if resumed is not None and not self.queued:
            self.active = resumed  # a later barge-in, and the stream's end, find it again

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: background task failed: %s", self.session_id, task.exception())

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
        """Cancel the running and queued turns and wait for every store write to land
        (idempotent)."""
        await self.endpointer.close()
        await self.turns.close()
        await self.speculator.close()
        if self.speculator.counts.started and not self._closed:
            log.info("session %s: %s", self.session_id, self.speculator.counts.summary())
        self._closed = True
        if self.listening is not None:
            self.listening.stream.cancel()
            self.listening.span.end()
            self.listening = None
        if self.opening is not None:
            self.opening.finish(status="interrupted", error="stream ended", latency_ms={})
            self.opening = None
        self.barge_in.close()
        running = [t.task for t in self._turns() if not t.task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
