"""The always-on edge agent: microphone -> server, answers -> speaker, camera frames,
and a link that survives the server or the network going away.

Tasks (all owned here, all cancelled on stop):
- capture: the audio source's chunks -> the half-duplex gate -> the ring buffer;
- uplink: the stream to the server, reconnecting with backoff (:mod:`edge.uplink`);
  its server events come back here (answer audio to the speaker, logs);
- camera: one frame per 1/fps captured in a thread and offered to the stream, dropped
  when the stream is backed up or down (frames never hold up audio).

Echo: in half-duplex mode (the default) the microphone's audio is replaced by silence
while an answer is queued or playing and for ``echo_tail_ms`` after the last sound
reached the speaker. The stream keeps flowing, so the server's clock and VAD see
continuous (silent) audio; the price is that the user cannot interrupt by voice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable

import grpc

import parley
from edge.camera import CameraError, FrameSource
from edge.mic import AudioSource
from edge.ring import AudioRing
from edge.speaker import AnswerPlayer, PlaybackKind
from edge.stats import AgentStats
from edge.tracing import TurnSpans
from edge.uplink import AgentRejected, Uplink
from parley.config import EdgeConfig
from protos import edge_pb2

log = logging.getLogger("edge")

FRAME_BACKLOG = 5  # outbox events above which a camera frame is dropped
# Fatal errors that end the stream but not the agent: it reconnects (the server's
# store or the server itself failed, not this edge's settings).
RETRYABLE_ERRORS = {edge_pb2.Error.INTERNAL, edge_pb2.Error.STORE_FAILED}
_PLAYBACK = {
    "started": edge_pb2.PlaybackEvent.STARTED,
    "finished": edge_pb2.PlaybackEvent.FINISHED,
    "interrupted": edge_pb2.PlaybackEvent.INTERRUPTED,
}
_PLAYBACK_LOG = {"started": "playing", "finished": "finished", "interrupted": "interrupted"}

__all__ = ["AgentRejected", "EdgeAgent"]


class EdgeAgent:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        source: AudioSource,
        speaker: AnswerPlayer,
        dial: Callable[[], grpc.aio.Channel],
        camera: FrameSource | None = None,
        observer: Callable[[edge_pb2.ServerEvent], None] | None = None,
    ) -> None:
        self.config = config
        self.source, self.speaker, self.camera = source, speaker, camera
        self.speaker.on_event = self._on_playback
        self.observer = observer
        self.ring = AudioRing(
            max(1, round(config.buffer_s * 1000 / config.chunk_ms)),
            max(1, round(config.unacked_s * 1000 / config.chunk_ms)),
        )
        self.stats = AgentStats()
        self.spans = TurnSpans(config.device_id)  # edge.capture, edge.playback
        self.uplink = Uplink(
            config,
            ring=self.ring,
            stats=self.stats,
            dial=dial,
            hello=self.hello,
            on_event=self._on_server_event,
        )
        self.playback: deque[tuple[PlaybackKind, str, float]] = deque(maxlen=256)
        self._seq = 0
        self.audio_epoch = uuid.uuid4().hex  # names this numbering of chunks (seq from 0)

    @property
    def connected(self) -> asyncio.Event:
        return self.uplink.connected

    def snapshot(self) -> dict[str, int]:
        """The counters, including audio sent on the stream that is open now."""
        stats = self.uplink.sync_stats().as_dict()
        stats["chunks_buffered"] = len(self.ring)
        stats["mic_overflows"] = self.source.overflows
        return stats

    def hello(self) -> edge_pb2.Hello:
        caps = ["speaker"] if self.speaker.is_device else []
        caps += ["camera"] if self.camera is not None else []
        caps += ["full-duplex"] if self.config.full_duplex else []
        return edge_pb2.Hello(
            device_id=self.config.device_id,
            token=self.config.token,
            pipeline=self.config.pipeline,
            audio_format=edge_pb2.AudioFormat(
                sample_rate=self.source.rate, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
            ),
            capabilities=caps,
            agent_version=parley.__version__,
            audio_epoch=self.audio_epoch,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, or a task fails (AgentRejected, a device error)."""
        loop = asyncio.get_running_loop()
        self.source.start(loop)
        try:
            self.speaker.start(loop)
            await self._open_camera()
            link = asyncio.create_task(self.uplink.run(), name="uplink")
            tasks = [asyncio.create_task(self._capture(), name="capture"), link]
            if self.camera is not None and self.config.camera_fps > 0:
                tasks.append(asyncio.create_task(self._frames(self.camera), name="camera"))
            stopper = asyncio.create_task(stop.wait(), name="stop")
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            await self.uplink.close(link)
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            self.source.stop()
            self.speaker.stop()
            if self.camera is not None:
                self.camera.close()

    async def _open_camera(self) -> None:
        """A camera that cannot be opened is logged and left out: voice goes on."""
        if self.camera is None:
            return
        try:
            await asyncio.to_thread(self.camera.open)
        except CameraError as exc:
            log.error("camera unavailable, running without frames: %s", exc)
            self.camera = None

    # ------------------------------------------------------------------ audio in

    def _gated(self, capture_time: float) -> bool:
        if self.config.full_duplex:
            return False
        tail = self.config.echo_tail_ms / 1000
        return self.speaker.busy or capture_time < self.speaker.audible_until + tail

    async def _capture(self) -> None:
        async for chunk in self.source.chunks():
            self.stats.chunks_captured += 1
            pcm = chunk.pcm
            if self._gated(chunk.capture_time):
                pcm = bytes(len(pcm))
                self.stats.chunks_gated += 1
            audio = edge_pb2.AudioChunk(seq=self._seq, pcm=pcm, capture_time=chunk.capture_time)
            self._seq += 1
            self.uplink.push(audio)

    # ------------------------------------------------------------------ server events

    def _on_server_event(self, event: edge_pb2.ServerEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "audio":
            audio = event.audio
            rate = audio.format.sample_rate or 16000
            if audio.resume:  # the server stopped it for speech that had no words
                log.info("resume playback (turn %s)", audio.turn_id)
                self.speaker.resume(audio.turn_id)
            self.speaker.play(audio.turn_id, audio.pcm, rate, audio.last)
        elif kind == "turn":
            self._on_turn(event.turn)
        elif kind == "transcript" and event.transcript.final:
            log.info("heard: %r", event.transcript.text)
        elif kind == "stop":
            log.info("stop playback (turn %s: %s)", event.stop.turn_id, event.stop.reason)
            self.speaker.interrupt(event.stop.turn_id)
        elif kind == "error":
            error = event.error
            log.warning("server error %s: %s", edge_pb2.Error.Code.Name(error.code), error.message)
            if error.code == edge_pb2.Error.STAGE_UNAVAILABLE:
                pipeline = self.config.pipeline or "the default pipeline"
                log.warning(
                    "the server has no %s worker for %s: start its workers on the server "
                    "(parley up --pipeline NAME)",
                    error.stage or "stage",
                    pipeline,
                )
            if error.fatal and error.code not in RETRYABLE_ERRORS:
                raise AgentRejected(f"{self.config.server} refused this edge: {error.message}")
        if self.observer is not None:
            self.observer(event)

    def _on_turn(self, turn: edge_pb2.TurnEvent) -> None:
        self.spans.on_turn(turn)
        if turn.kind == edge_pb2.TurnEvent.SPEECH_STARTED:
            log.info("speech started")
        elif turn.kind == edge_pb2.TurnEvent.SPEECH_ENDED:
            self.stats.turns += 1
            log.info("turn %s: speech ended, waiting for the answer", turn.turn_id)
        elif turn.kind == edge_pb2.TurnEvent.NO_SPEECH:
            log.info("turn %s: heard no words (noise?); not answered", turn.turn_id)
        elif turn.kind == edge_pb2.TurnEvent.FINISHED:
            v2v = turn.latency_ms.get("voice_to_voice_ms")
            note = " (interrupted)" if turn.interrupted else ""
            note += f", voice-to-voice {v2v:.0f} ms" if v2v else ""
            log.info("turn %s finished%s", turn.turn_id, note)

    def _on_playback(self, kind: PlaybackKind, turn_id: str, at: float) -> None:
        self.playback.append((kind, turn_id, at))
        log.info("%s answer (turn %s)", _PLAYBACK_LOG[kind], turn_id)
        event = edge_pb2.PlaybackEvent(turn_id=turn_id, kind=_PLAYBACK[kind], edge_time=at)
        self.uplink.offer(edge_pb2.EdgeEvent(playback=event))
        payload = self.spans.on_playback(turn_id, _PLAYBACK[kind], at)
        if payload:  # the turn's edge spans, for the server to store and re-export
            self.uplink.offer(edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=payload)))

    # ------------------------------------------------------------------ camera

    async def _frames(self, camera: FrameSource) -> None:
        interval = 1.0 / self.config.camera_fps
        due = time.monotonic()
        seq, failing = 0, False
        while True:
            due = max(due + interval, time.monotonic())
            await asyncio.sleep(due - time.monotonic())
            backlog = self.uplink.backlog
            if backlog is None or backlog > FRAME_BACKLOG:
                self.stats.frames_dropped += 1
                continue
            captured = time.monotonic()
            try:
                frame = await asyncio.to_thread(camera.capture)
            except Exception as exc:  # a camera hiccup must not stop the audio
                self.stats.frames_dropped += 1
                if not failing:
                    log.warning("camera capture failed: %s", exc)
                failing = True
                continue
            failing = False
            event = edge_pb2.VideoFrame(
                seq=seq,
                jpeg=frame.jpeg,
                capture_time=captured,
                width=frame.width,
                height=frame.height,
            )
            seq += 1
            if self.uplink.offer(edge_pb2.EdgeEvent(frame=event)):
                self.stats.frames_sent += 1
            else:
                self.stats.frames_dropped += 1
