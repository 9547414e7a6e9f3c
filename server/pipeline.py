"""Run one turn across the workers: STT -> LLM (streamed) -> sentences -> TTS (streamed).

The LLM and the TTS run concurrently: each sentence goes to the TTS worker as soon as
the LLM completes it, and each audio chunk goes to the edge as soon as the TTS makes it.
Partial results are kept in ``TurnResult`` as they arrive, so a turn cancelled by
barge-in or failed by a worker is still stored with what it had.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.config import PipelineConfig, ServerConfig
from protos import edge_pb2
from protos import workers_pb2 as wpb
from server import worker_clients as clients
from server.latency import TurnLatency
from server.outbox import Emit
from server.sentences import SentenceSplitter
from server.worker_clients import WorkerPool


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of the conversation, for the LLM's history."""

    user: str
    assistant: str


@dataclass
class TurnInput:
    turn_id: str
    pcm: bytes  # PCM16LE mono
    sample_rate: int
    history: Sequence[Exchange] = ()
    # (edge capture time, JPEG) of the camera frames seen during the turn, oldest first
    frames: Sequence[tuple[float, bytes]] = ()
    # The transcription call already fed with the turn's audio while the user spoke
    # (None: send ``pcm`` in one go).
    listening: clients.SttStream | None = None


@dataclass
class TurnResult:
    transcript: str = ""
    response: str = ""
    audio: bytearray = field(default_factory=bytearray)  # PCM16LE mono answer audio
    audio_rate: int = 0
    error: clients.StageError | None = None


def _str_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


class PipelineRunner:
    def __init__(
        self,
        pipeline: PipelineConfig,
        pools: Mapping[str, WorkerPool],
        server: ServerConfig,
        metadata: Callable[[], Sequence[tuple[str, str]]] = tuple,
    ) -> None:
        self.pipeline = pipeline
        self.server = server
        self.stt_pool = pools[pipeline.stt.pool]
        self.llm_pool = pools[pipeline.llm.pool]
        self.tts_pool = pools[pipeline.tts.pool]
        self.metadata = metadata  # per-call gRPC metadata (trace context)

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

    def listen(self, sample_rate: int, max_turn_s: float) -> clients.SttStream:
        """Open the transcription call for a turn that has just started."""
        return clients.SttStream(
            self.stt_pool,
            self._stt_config(sample_rate),
            timeout=max_turn_s + self.server.stt_timeout_s,
            metadata=self.metadata(),
        )

    async def _transcribe(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        stt = None
        if turn.listening is not None:
            try:
                stt = await turn.listening.finish()
            except clients.StageError as exc:
                if not exc.unavailable:
                    raise
                # The worker went away while the user spoke: send the whole turn again
                # (to another worker of the pool if there is one).
        if stt is None:
            stt = await clients.transcribe(
                self.stt_pool,
                turn.pcm,
                self._stt_config(turn.sample_rate),
                timeout=self.server.stt_timeout_s,
                metadata=self.metadata(),
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
        llm, tts = self.pipeline.llm.params, self.pipeline.tts.params
        request = wpb.LlmRequest(
            messages=self._messages(turn, result.transcript),
            temperature=float(llm.get("temperature", 0.7)),
            max_tokens=int(llm.get("max_tokens", 256)),
            options=_str_map(llm.get("options")),
        )
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        async def produce() -> None:
            splitter = SentenceSplitter()
            try:
                async for delta in clients.generate(
                    self.llm_pool,
                    request,
                    timeout=self.server.llm_timeout_s,
                    metadata=self.metadata(),
                ):
                    if not delta.text:
                        continue
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
            finally:
                sentences.put_nowait(None)
            emit(
                edge_pb2.ServerEvent(
                    response=edge_pb2.ResponseText(turn_id=turn.turn_id, final=True)
                )
            )

        async def texts() -> AsyncIterator[str]:
            while (sentence := await sentences.get()) is not None:
                yield sentence

        async def speak() -> None:
            config = wpb.TtsConfig(
                voice=str(tts.get("voice", "")),
                speed=float(tts.get("speed", 0.0)),
                options=_str_map(tts.get("options")),
            )
            seq = 0
            async for audio in clients.synthesize(
                self.tts_pool,
                config,
                texts(),
                timeout=self.server.tts_timeout_s,
                metadata=self.metadata(),
            ):
                if not audio.pcm:
                    continue
                if "tts_first_audio" not in latency.marks:
                    latency.mark("tts_first_audio")
                    latency.model_time("tts", audio.model_seconds)
                result.audio_rate = audio.sample_rate
                result.audio += audio.pcm
                emit(
                    _audio_event(turn.turn_id, seq, audio.pcm, audio.sample_rate),
                    on_sent=lambda: latency.mark("first_audio_sent"),
                )
                seq += 1
            emit(_audio_event(turn.turn_id, seq, b"", result.audio_rate or 16000, last=True))

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                group.create_task(speak())
        except ExceptionGroup as failed:  # the first failure is the one to report
            raise failed.exceptions[0] from None


def _audio_event(
    turn_id: str, seq: int, pcm: bytes, rate: int, *, last: bool = False
) -> edge_pb2.ServerEvent:
    fmt = edge_pb2.AudioFormat(sample_rate=rate, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE)
    return edge_pb2.ServerEvent(
        audio=edge_pb2.AudioOut(turn_id=turn_id, seq=seq, pcm=pcm, format=fmt, last=last)
    )
