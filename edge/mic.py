"""Audio sources for the agent: a real microphone (sounddevice) or a WAV file played
as if spoken into one. Both yield stream chunks (:class:`edge.capture.Chunk`).

The microphone's PortAudio callback runs on PortAudio's thread and never blocks: it
copies the block, notes the time and hands both to the event loop with
``call_soon_threadsafe``; the loop puts them in a bounded queue (a full queue drops the
block and counts it). Conversion and chunking happen on the loop, not in the callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from edge import devices
from edge.capture import Chunk, ChunkMaker

log = logging.getLogger(__name__)

_Block = tuple[bytes, float]  # (interleaved PCM16, arrival time)
STALL_S = 5.0  # a microphone silent (no blocks at all) this long has gone away


class AudioSource(Protocol):
    rate: int  # of the chunks yielded
    overflows: int  # native blocks lost before conversion

    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def stop(self) -> None: ...

    def chunks(self) -> AsyncIterator[Chunk]: ...

    def describe(self) -> str: ...


class Microphone:
    """A sounddevice InputStream on ``device`` (index, part of a name, or "" for the
    default), mono when the device allows it, converted to ``rate`` Hz mono in
    ``chunk_ms`` chunks. The device delivers ``block_ms`` blocks: each callback costs a
    thread switch and an event-loop wake-up, so 40 ms blocks cost half the CPU of 20 ms
    ones, for at most 20 ms more delay (the chunks and their times do not change).

    ``native_rate`` 0 picks the device's rate: its default if that is a multiple of
    ``rate`` (48 kHz, 32 kHz, 16 kHz: a cheap integer-ratio conversion), else 48 kHz if
    the device takes it, else its default (any rate is converted, at more CPU).
    """

    def __init__(
        self,
        device: str = "",
        *,
        rate: int = 16000,
        chunk_ms: int = 20,
        block_ms: int = 40,
        native_rate: int = 0,
        channels: int = 0,
        queue_blocks: int = 50,
    ) -> None:
        self.rate, self.chunk_ms, self.block_ms = rate, chunk_ms, block_ms
        self.info = devices.resolve(device, "input")
        self.native_rate = native_rate or self._pick_rate()
        self.channels = channels or self._pick_channels()
        self.overflows = 0  # blocks dropped because the loop fell behind
        self.device_overflows = 0  # PortAudio reported input overflow
        self._queue: asyncio.Queue[_Block] = asyncio.Queue(queue_blocks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None

    def _pick_rate(self) -> int:
        default = int(self.info["default_samplerate"])
        if default % self.rate == 0:
            return default
        if 48000 % self.rate:
            return default
        sd = devices.sounddevice()
        for channels in (1, int(min(8, self.info["max_input_channels"]))):
            try:
                sd.check_input_settings(self.info["index"], channels=channels, samplerate=48000)
                return 48000
            except sd.PortAudioError:
                continue
        return default

    def _pick_channels(self) -> int:
        sd = devices.sounddevice()
        try:
            sd.check_input_settings(self.info["index"], channels=1, samplerate=self.native_rate)
            return 1
        except sd.PortAudioError:  # e.g. array microphones that only open all channels
            return int(min(8, self.info["max_input_channels"]))

    def describe(self) -> str:
        return f"{self.info['name']} ({self.native_rate} Hz, {self.channels} ch)"

    @property
    def latency(self) -> float:
        """PortAudio's input latency (capture to callback), seconds; 0 until started."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        sd = devices.sounddevice()
        self._loop = loop
        try:
            self._stream = sd.RawInputStream(
                device=self.info["index"],
                samplerate=self.native_rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.native_rate * self.block_ms // 1000,
                latency="high",  # roomier buffers: a busy Pi's callbacks may be late
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise devices.DeviceError(f"cannot open microphone {self.describe()}: {exc}") from None

    def _callback(self, data: Any, frames: int, times: Any, status: Any) -> None:
        # PortAudio's thread: copy, stamp, hand over. Nothing here may block.
        arrival = time.monotonic()
        if status.input_overflow:
            self.device_overflows += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._deliver, (bytes(data), arrival))
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _deliver(self, block: _Block) -> None:
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            self.overflows += 1

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    async def chunks(self) -> AsyncIterator[Chunk]:
        maker = ChunkMaker(
            self.native_rate, self.channels, rate=self.rate, chunk_ms=self.chunk_ms,
            latency=self.latency,
        )  # fmt: skip
        while True:
            try:
                pcm, arrival = await asyncio.wait_for(self._queue.get(), STALL_S)
            except TimeoutError:  # unplugged, or the driver stopped: let the service restart
                raise devices.DeviceError(
                    f"no audio from microphone {self.describe()} for {STALL_S:.0f} s"
                ) from None
            for chunk in maker.feed(pcm, arrival):
                yield chunk


class FileMicrophone:
    """A PCM16 WAV file played as a microphone at real-time pace, in ``block_ms`` native
    blocks through the same conversion as a real device; ``loop`` repeats it after
    ``gap_s`` of silence (benchmarks, machines without a sound card)."""

    def __init__(
        self,
        path: str | Path,
        *,
        rate: int = 16000,
        chunk_ms: int = 20,
        block_ms: int = 40,
        loop: bool = True,
        gap_s: float = 2.0,
    ) -> None:
        self.path, self.rate, self.chunk_ms = Path(path), rate, chunk_ms
        self.block_ms = block_ms
        with wave.open(str(self.path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise devices.DeviceError(f"{self.path}: only 16-bit PCM WAV files can be played")
            self.native_rate, self.channels = wav.getframerate(), wav.getnchannels()
            self._pcm = wav.readframes(wav.getnframes())
        self._pcm += bytes(2 * self.channels * int(gap_s * self.native_rate))
        self.repeat = loop
        self.overflows = 0

    def describe(self) -> str:
        return f"file {self.path.name} ({self.native_rate} Hz, {self.channels} ch)"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def stop(self) -> None:
        pass

    async def chunks(self) -> AsyncIterator[Chunk]:
        maker = ChunkMaker(self.native_rate, self.channels, rate=self.rate, chunk_ms=self.chunk_ms)
        block = 2 * self.channels * (self.native_rate * self.block_ms // 1000)
        start, sent = time.monotonic(), 0
        while True:
            for offset in range(0, len(self._pcm) - block + 1, block):
                sent += block // (2 * self.channels)
                due = start + sent / self.native_rate  # when the block's last sample is "in"
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                for chunk in maker.feed(self._pcm[offset : offset + block], due):
                    yield chunk
            if not self.repeat:
                return
