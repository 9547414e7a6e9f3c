"""The headless edge: stream a recording as if spoken into a microphone, and write the
answers to a WAV file as if played on a speaker.

Audio goes out in ``chunk_ms`` chunks at real-time pace (or as fast as possible with
``fast``), in the file's own rate and channel count: the server converts. Capture
times are stamped on this process's monotonic clock, and the "speaker" reports
playback start when the first answer chunk of a turn arrives, so voice-to-voice
latency is measured on one clock. With ``fast`` pacing there is no meaningful
capture clock, so playback is not reported and voice-to-voice is not measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

import parley
from edge.connection import Connection
from edge.tracing import TurnSpans, parse_traceparent
from parley import rpc
from parley.audio import read_audio, write_wav
from parley.config import EdgeConfig
from parley.errors import ParleyError
from protos import edge_pb2

log = logging.getLogger(__name__)


class EdgeError(ParleyError):
    """The server refused the stream or the stream broke."""


@dataclass
class TurnReport:
    turn_id: str
    transcript: str = ""
    response: str = ""
    interrupted: bool = False
    no_speech: bool = False  # the server heard no words: not answered
    error: str = ""
    # FINISHED said whether the turn is in the server's store (False: STORE_FAILED);
    # None: the turn did not finish.
    stored: bool | None = None
    traceparent: str = ""
    speech_end_edge: float | None = None
    first_played_edge: float | None = None
    audio_seconds: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def voice_to_voice_ms(self) -> float | None:
        if self.speech_end_edge is None or self.first_played_edge is None:
            return None
        return (self.first_played_edge - self.speech_end_edge) * 1000.0

    @property
    def trace_id(self) -> str:
        parsed = parse_traceparent(self.traceparent)
        return parsed[0].hex() if parsed else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "trace_id": self.trace_id,
            "transcript": self.transcript,
            "response": self.response,
            "interrupted": self.interrupted,
            "no_speech": self.no_speech,
            "error": self.error,
            "stored": self.stored,
            "answer_audio_seconds": round(self.audio_seconds, 3),
            "voice_to_voice_ms": self.voice_to_voice_ms,
            "latency_ms": self.latency_ms,
        }


@dataclass
class SessionReport:
    session_id: str = ""
    pipeline: str = ""
    turns: list[TurnReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    output: str = ""  # the answers' WAV, "" when no answer audio came (nothing written)
    # Stages the server found no healthy worker for (stage -> the server's message).
    unavailable: dict[str, str] = field(default_factory=dict)


class WavSink:
    """Collects answer audio (one rate per file: the first chunk's)."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.rate = 0

    def write(self, audio: edge_pb2.AudioOut) -> None:
        if not audio.pcm:
            return
        rate = audio.format.sample_rate or 16000
        if self.rate and rate != self.rate:
            raise EdgeError(f"answer audio changed rate ({self.rate} -> {rate} Hz)")
        self.rate = rate
        self.pcm += audio.pcm

    def save(self, path: Path) -> bool:
        """Write the answers' WAV; False (nothing written) when no audio came."""
        if not self.pcm:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, bytes(self.pcm), self.rate or 16000)
        return True


class HeadlessEdge:
    def __init__(
        self, config: EdgeConfig, *, fast: bool = False, trailing_silence_s: float = 1.5
    ) -> None:
        self.config = config
        self.fast = fast
        self.trailing_silence_s = trailing_silence_s
        self.report = SessionReport()
        self.sink = WavSink()
        self._turns: dict[str, TurnReport] = {}
        self._pending: set[str] = set()  # turns whose speech ended but are not finished
        self._speaking = False  # speech started, turn not closed yet
        self._settled = asyncio.Event()
        self._pong = asyncio.Event()
        self._closed = False
        self._audio_seq = 0
        self._frame_seq = 0
        self.spans = TurnSpans(config.device_id)

    def _hello(self, rate: int, channels: int) -> edge_pb2.Hello:
        return edge_pb2.Hello(
            device_id=self.config.device_id,
            token=self.config.token,
            pipeline=self.config.pipeline,
            audio_format=edge_pb2.AudioFormat(
                sample_rate=rate, channels=channels, encoding=edge_pb2.AudioFormat.PCM16LE
            ),
            capabilities=["speaker"] if not self.fast else [],
            agent_version=parley.__version__,
        )

    async def run(self, wav_in: Path, wav_out: Path, *, timeout: float = 300.0) -> SessionReport:
        samples, rate = read_audio(wav_in)
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        link = Connection(rpc.dial(self.config.server), self._hello(rate, channels), outbox=512)
        try:
            async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
                group.create_task(self._read(link))
                group.create_task(self._stream(link, samples, rate))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            await link.close()
        if self.sink.save(wav_out):
            self.report.output = str(wav_out)
        return self.report

    async def _stream(self, link: Connection, samples: np.ndarray, rate: int) -> None:
        await self._speak(link, samples, rate)
        await self._settle(link)
        link.close_send()

    async def _speak(
        self,
        link: Connection,
        samples: np.ndarray,
        rate: int,
        frames: Sequence[tuple[float, bytes]] = (),
    ) -> None:
        """Stream one recording plus the trailing silence (paced unless ``fast``);
        ``frames`` are (seconds into the recording, JPEG), each sent when due."""
        silence = np.zeros((int(self.trailing_silence_s * rate), *samples.shape[1:]), np.int16)
        audio = np.concatenate([samples, silence])
        step = max(1, rate * self.config.chunk_ms // 1000)
        due = sorted(frames, key=lambda frame: frame[0])
        start = time.monotonic()
        for offset in range(0, len(audio), step):
            if self._closed:  # the server ended the stream
                return
            capture = start + offset / rate
            if not self.fast:  # a microphone hands over a chunk once all of it is recorded
                recorded = start + min(offset + step, len(audio)) / rate
                await asyncio.sleep(max(0.0, recorded - time.monotonic()))
            while due and due[0][0] * rate < offset + step:
                at, jpeg = due.pop(0)
                frame = edge_pb2.VideoFrame(seq=self._frame_seq, jpeg=jpeg, capture_time=start + at)
                self._frame_seq += 1
                await link.send(edge_pb2.EdgeEvent(frame=frame))
            chunk = edge_pb2.AudioChunk(
                seq=self._audio_seq,
                pcm=audio[offset : offset + step].tobytes(),
                capture_time=capture,
            )
            self._audio_seq += 1
            await link.send(edge_pb2.EdgeEvent(audio=chunk))

    async def _settle(self, link: Connection) -> None:
        """Wait until the server has handled everything sent so far and every turn it
        started has finished (the server answers a Ping after all audio before it)."""
        if self._closed:
            return
        self._pong.clear()
        self._settled.clear()
        await link.send(edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=time.monotonic())))
        await self._pong.wait()
        self._check_settled()
        await self._settled.wait()

    def _check_settled(self) -> None:
        if self._pong.is_set() and not self._pending and not self._speaking:
            self._settled.set()

    def _turn(self, turn_id: str) -> TurnReport:
        if turn_id not in self._turns:
            self._turns[turn_id] = TurnReport(turn_id)
            self.report.turns.append(self._turns[turn_id])
        return self._turns[turn_id]

    async def _read(self, link: Connection) -> None:
        try:
            await self._dispatch(link)
        except grpc.aio.AioRpcError as exc:
            raise EdgeError(f"stream ended: {exc.code().name}: {exc.details()}") from None
        finally:  # wake the sender, whatever happened
            self._closed = True
            self._pong.set()
            self._settled.set()

    async def _dispatch(self, link: Connection) -> None:
        async for event in link.events():
            kind = event.WhichOneof("event")
            if kind == "welcome":
                self.report.session_id = event.welcome.session_id
                self.report.pipeline = event.welcome.pipeline
            elif kind == "turn":
                self._on_turn(event.turn)
            elif kind == "transcript":
                self._turn(event.transcript.turn_id).transcript = event.transcript.text
                log.info("heard: %s", event.transcript.text)
            elif kind == "response":
                self._turn(event.response.turn_id).response += event.response.delta
            elif kind == "audio":
                await self._on_audio(link, event.audio)
            elif kind == "stop":
                log.info("stop playback (turn %s, %s)", event.stop.turn_id, event.stop.reason)
                if not self.fast:
                    interrupted = edge_pb2.PlaybackEvent.INTERRUPTED
                    await self._playback(link, event.stop.turn_id, interrupted, time.monotonic())
            elif kind == "error":
                self._on_error(event.error)
            elif kind == "pong":
                self._pong.set()
                self._check_settled()

    def _on_turn(self, turn: edge_pb2.TurnEvent) -> None:
        kinds = edge_pb2.TurnEvent
        report = self._turn(turn.turn_id)
        report.traceparent = turn.traceparent or report.traceparent
        if not self.fast:  # unpaced audio has no meaningful capture clock
            self.spans.on_turn(turn)
        if turn.kind == kinds.SPEECH_STARTED:
            self._speaking = True
            log.info("turn %s: speech started", turn.turn_id)
        elif turn.kind == kinds.SPEECH_ENDED:
            self._speaking = False
            self._pending.add(turn.turn_id)
            report.speech_end_edge = turn.edge_time
            log.info("turn %s: speech ended", turn.turn_id)
        elif turn.kind == kinds.NO_SPEECH:
            report.no_speech = True
            log.info("turn %s: heard no words; not answered", turn.turn_id)
        elif turn.kind == kinds.FINISHED:
            report.latency_ms = dict(turn.latency_ms)
            report.interrupted = turn.interrupted
            report.stored = turn.stored
            self._pending.discard(turn.turn_id)
            log.info(
                "turn %s finished%s", turn.turn_id, " (interrupted)" if turn.interrupted else ""
            )
        self._check_settled()

    async def _on_audio(self, link: Connection, audio: edge_pb2.AudioOut) -> None:
        report = self._turn(audio.turn_id)
        if audio.pcm:
            self.sink.write(audio)
            report.audio_seconds += len(audio.pcm) / 2 / (audio.format.sample_rate or 16000)
        if self.fast:
            return
        now = time.monotonic()
        if report.first_played_edge is None and audio.pcm:
            report.first_played_edge = now
            await self._playback(link, audio.turn_id, edge_pb2.PlaybackEvent.STARTED, now)
        if audio.last:
            await self._playback(link, audio.turn_id, edge_pb2.PlaybackEvent.FINISHED, now)

    async def _playback(
        self, link: Connection, turn_id: str, kind: edge_pb2.PlaybackEvent.Kind, at: float
    ) -> None:
        """Report playback to the server; when it ends, ship the turn's edge spans."""
        event = edge_pb2.PlaybackEvent(turn_id=turn_id, kind=kind, edge_time=at)
        await link.send(edge_pb2.EdgeEvent(playback=event))
        payload = self.spans.on_playback(turn_id, kind, at)
        if payload:
            await link.send(edge_pb2.EdgeEvent(spans=edge_pb2.Spans(otlp=payload)))

    def _on_error(self, error: edge_pb2.Error) -> None:
        message = f"{edge_pb2.Error.Code.Name(error.code)}: {error.message}"
        self.report.errors.append(message)
        if error.code == edge_pb2.Error.STAGE_UNAVAILABLE:
            self.report.unavailable.setdefault(error.stage or "a stage", error.message)
        if error.turn_id:
            self._turn(error.turn_id).error = message
        log.warning("server error: %s", message)
        if error.fatal:
            raise EdgeError(message)
