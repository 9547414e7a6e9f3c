"""The speaker: a sounddevice OutputStream fed by a :class:`JitterBuffer`.

Answer audio arrives as chunks at whatever rate the TTS produced; each turn's audio
is resampled to the device's rate on the event loop (the callback only copies), and
played gaplessly. The device gets roomy buffers (``latency``, 100 ms by default) so a
busy machine does not make it skip; ``interrupt`` empties the jitter buffer *and* drops
what the device has queued (PortAudio abort + restart, a few milliseconds), so the
sound stops at once however large those buffers are. The stream runs only while there
is something to play (and ``IDLE_S`` after), so an idle agent costs no audio callbacks.

Playback events carry edge times of the moment the sound reaches the DAC, computed in
the callback from PortAudio's output timing, and are delivered on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from edge import devices
from edge.jitter import JitterBuffer
from parley.audio import Resampler, float_to_pcm16, pcm16_to_float

log = logging.getLogger(__name__)

IDLE_S = 2.0  # the output stream stops this long after the last answer ended

PlaybackKind = Literal["started", "finished", "interrupted"]
PlaybackHandler = Callable[[PlaybackKind, str, float], None]  # kind, turn id, edge time


def _ignore(kind: PlaybackKind, turn_id: str, at: float) -> None:
    pass


class AnswerPlayer(Protocol):
    is_device: bool  # a real output (advertised to the server as "speaker")
    audible_until: float  # edge time the last sound written is heard until
    on_event: PlaybackHandler

    @property
    def busy(self) -> bool: ...  # answer audio queued or playing

    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def stop(self) -> None: ...

    def play(self, turn_id: str, pcm: bytes, rate: int, last: bool) -> None: ...

    def interrupt(self, turn_id: str = "") -> list[str]: ...

    def resume(self, turn_id: str) -> None: ...

    def describe(self) -> str: ...


class Speaker:
    is_device = True

    def __init__(
        self,
        device: str = "",
        *,
        on_event: PlaybackHandler = _ignore,
        rate: int = 0,
        block_ms: int = 40,
        prebuffer_ms: int = 60,
        latency: float = 0.1,
    ) -> None:
        self.info = devices.resolve(device, "output")
        self.rate = rate or int(self.info["default_samplerate"])
        self.channels = self._pick_channels()
        self.block = self.rate * block_ms // 1000
        self.buffer = JitterBuffer(self.rate * prebuffer_ms // 1000)
        self.on_event = on_event
        self.audible_until = -math.inf  # edge time the last sound written is heard until
        self._mono = np.zeros(self.block * 4, np.int16)
        self._latency = latency
        self._resampling: tuple[str, int, Resampler] | None = None  # turn, source rate
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None

    def _pick_channels(self) -> int:
        sd = devices.sounddevice()
        try:
            sd.check_output_settings(self.info["index"], channels=1, samplerate=self.rate)
            return 1
        except sd.PortAudioError:
            return 2

    @property
    def busy(self) -> bool:
        return self.buffer.busy

    def describe(self) -> str:
        return f"{self.info['name']} ({self.rate} Hz, {self.channels} ch)"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        sd = devices.sounddevice()
        self._loop = loop
        try:
            self._stream = sd.OutputStream(
                device=self.info["index"],
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.block,
                latency=self._latency,
                callback=self._callback,
            )
            self._stream.start()  # proves the device works; stopped again when idle
        except sd.PortAudioError as exc:
            raise devices.DeviceError(f"cannot open speaker {self.describe()}: {exc}") from None
        self._latency = float(self._stream.latency)
        self._idle_later()

    def _idle_later(self) -> None:
        if self._loop is not None:
            self._loop.call_later(IDLE_S, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        stream = self._stream
        idle = not self.buffer.busy and time.monotonic() > self.audible_until + IDLE_S / 2
        if stream is not None and stream.active and idle:
            stream.abort()  # nothing queued: nothing is lost

    def _mark(self, kind: PlaybackKind, turn_id: str, at: float) -> None:
        """A turn started or finished playing (on the event loop)."""
        self.on_event(kind, turn_id, at)
        if kind == "finished":
            self._idle_later()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    # ------------------------------------------------------------------ event loop side

    def play(self, turn_id: str, pcm: bytes, rate: int, last: bool) -> None:
        """Queue one AudioOut chunk (PCM16 mono at ``rate``)."""
        stream = self._stream
        if pcm and stream is not None and not stream.active:
            stream.start()
        current = self._resampling
        if current is None or current[:2] != (turn_id, rate):
            if current is not None and current[0] == turn_id:  # the rate changed mid-turn
                self._push(turn_id, current[2].flush())
            current = (turn_id, rate, Resampler(rate, self.rate))
            self._resampling = current
        resampler = current[2]
        if pcm:
            self._push(turn_id, resampler.process(pcm16_to_float(pcm)))
        if last:
            self._push(turn_id, resampler.flush())
            self.buffer.end(turn_id)
            self._resampling = None

    def _push(self, turn_id: str, samples: np.ndarray) -> None:
        self.buffer.push(turn_id, float_to_pcm16(samples))

    def interrupt(self, turn_id: str = "") -> list[str]:
        """Stop ``turn_id`` (every turn for ""): its queued audio is dropped now and
        silence goes out from the next block. Reports ``interrupted`` for each turn
        stopped before it finished, with the edge time of the stop."""
        stopped = self.buffer.clear(turn_id)
        if self._resampling is not None and (not turn_id or self._resampling[0] == turn_id):
            self._resampling = None
        at = time.monotonic()
        stream = self._stream
        if stopped and stream is not None and stream.active and at < self.audible_until:
            stream.abort()  # drop what the device has queued: silence now
            self.audible_until = at
            if self.buffer.busy:  # another turn is queued behind the stopped one
                stream.start()
        self._idle_later()
        for turn in stopped:
            self.on_event("interrupted", turn, at)
        return stopped

    def resume(self, turn_id: str) -> None:
        """The server resumes ``turn_id`` after stopping it: its chunks play again."""
        self.buffer.resume(turn_id)

    # ------------------------------------------------------------------ PortAudio's thread

    def _callback(self, out: Any, frames: int, times: Any, status: Any) -> None:
        now = time.monotonic()
        lag = times.outputBufferDacTime - times.currentTime
        dac = now + (lag if 0.0 <= lag < 1.0 else self._latency)
        if frames > self._mono.size:
            self._mono = np.zeros(frames, np.int16)
        mono = self._mono[:frames]
        written, marks = self.buffer.read(mono)
        out[:] = mono[:, None]
        if written:
            self.audible_until = dac + written / self.rate
        loop = self._loop
        if marks and loop is not None and not loop.is_closed():
            for kind, turn, offset in marks:
                try:
                    loop.call_soon_threadsafe(self._mark, kind, turn, dac + offset / self.rate)
                except RuntimeError:  # the loop is closing
                    return


class NullSpeaker:
    """No speaker (``--speaker none``): answers are discarded, nothing is reported."""

    is_device = False
    busy = False
    audible_until = -math.inf
    on_event: PlaybackHandler = _ignore

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def stop(self) -> None:
        pass

    def play(self, turn_id: str, pcm: bytes, rate: int, last: bool) -> None:
        pass

    def interrupt(self, turn_id: str = "") -> list[str]:
        return []

    def resume(self, turn_id: str) -> None:
        pass

    def describe(self) -> str:
        return "none (answers are not played)"
