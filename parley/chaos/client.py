"""A Converse client for the harness: sends raw bytes (or EdgeEvents), records every
server event and how the stream ended, and can end it in each way an edge can."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path

import grpc

from parley import rpc
from parley.request_stream import QueueIterator
from protos import edge_pb2

SPEECH_WAV = Path(__file__).resolve().parent.parent / "assets" / "turn_on_the_living_room_lamp.wav"
CONVERSE = "/parley.edge.v1.Edge/Converse"
RATE = 16000
CHUNK = RATE // 50  # 20 ms


def speech_pcm() -> bytes:
    """The bundled spoken command: 16 kHz mono PCM16, about 3 s."""
    with wave.open(str(SPEECH_WAV), "rb") as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1
        return wav.readframes(wav.getnframes())


def hello(device_id: str = "chaos", epoch: str = "", **fields: object) -> edge_pb2.EdgeEvent:
    return edge_pb2.EdgeEvent(
        hello=edge_pb2.Hello(
            device_id=device_id,
            audio_format=edge_pb2.AudioFormat(
                sample_rate=RATE, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
            ),
            audio_epoch=epoch,
            **fields,  # type: ignore[arg-type]
        )
    )


def audio_chunks(
    pcm: bytes, first_seq: int = 0, chunk_bytes: int = 2 * CHUNK
) -> list[edge_pb2.EdgeEvent]:
    now = time.monotonic()
    return [
        edge_pb2.EdgeEvent(
            audio=edge_pb2.AudioChunk(
                seq=first_seq + i,
                pcm=pcm[offset : offset + chunk_bytes],
                capture_time=now + offset / 2 / RATE,
            )
        )
        for i, offset in enumerate(range(0, len(pcm), chunk_bytes))
    ]


def turn_audio(silence_s: float = 1.0) -> bytes:
    """The spoken command followed by ``silence_s`` of silence (enough to end the turn)."""
    return speech_pcm() + bytes(2 * int(RATE * silence_s))


class RawStream:
    """One Converse call. ``send`` takes bytes (sent as they are) or an EdgeEvent."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.events: list[edge_pb2.ServerEvent] = []
        self.status: grpc.StatusCode | None = None
        self.details = ""
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._changed = asyncio.Event()

    async def open(self, timeout: float | None = None) -> RawStream:
        self.channel = rpc.dial(self.address)
        method = self.channel.stream_stream(
            CONVERSE,
            request_serializer=lambda data: data,
            response_deserializer=edge_pb2.ServerEvent.FromString,
        )
        self.call = method(QueueIterator(self._outbox), timeout=timeout)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for event in self.call:
                self.events.append(event)
                self._changed.set()
        except grpc.aio.AioRpcError as exc:
            self.status, self.details = exc.code(), exc.details() or ""
        except asyncio.CancelledError:
            self.status = grpc.StatusCode.CANCELLED
        else:
            self.status = grpc.StatusCode.OK
        finally:
            self._changed.set()

    def send(self, *items: bytes | edge_pb2.EdgeEvent) -> None:
        for item in items:
            data = item if isinstance(item, bytes) else item.SerializeToString()
            self._outbox.put_nowait(data)

    def close_send(self) -> None:
        self._outbox.put_nowait(None)

    def cancel(self) -> None:
        self.call.cancel()

    async def wait_for(
        self, predicate: Callable[[edge_pb2.ServerEvent], bool], timeout: float = 20.0
    ) -> edge_pb2.ServerEvent | None:
        """The first event matching ``predicate``; None if the stream ended first."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                if self.reader.done():
                    return None
                self._changed.clear()
                await self._changed.wait()

    async def finish(self, timeout: float = 10.0) -> grpc.StatusCode | None:
        """Wait for the stream to end (cancelling it after ``timeout``); its status."""
        done, _ = await asyncio.wait([self.reader], timeout=timeout)
        if not done:
            self.call.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.channel.close()
        return self.status

    def errors(self) -> list[edge_pb2.Error]:
        return [e.error for e in self.events if e.HasField("error")]

    def finished(self) -> list[edge_pb2.TurnEvent]:
        return [
            e.turn
            for e in self.events
            if e.HasField("turn") and e.turn.kind == edge_pb2.TurnEvent.FINISHED
        ]


def is_kind(name: str) -> Callable[[edge_pb2.ServerEvent], bool]:
    return lambda event: event.WhichOneof("event") == name


def is_finished(event: edge_pb2.ServerEvent) -> bool:
    return event.HasField("turn") and event.turn.kind == edge_pb2.TurnEvent.FINISHED
