"""Text-to-speech through the OpenAI speech API (or a compatible server), streamed.

The audio's sample rate is taken from the response, never assumed: by default the
engine asks for WAV (``response_format="wav"``), whose header states the rate, and
streams the samples after it as they arrive. With ``response_format="pcm"`` (raw
samples, for a server without WAV) the rate comes from the response's Content-Type
(``audio/pcm;rate=22050``, ``audio/L16; rate=24000``) or else from the ``sample_rate``
option, which must then be set (OpenAI's own "pcm" is 24000 Hz); with neither the
engine fails with a clear error instead of playing at the wrong speed.
"""

from __future__ import annotations

import io
import logging
import re
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np

from workers.engines import Speech, TtsRequest
from workers.errors import BadResponse, InvalidRequest
from workers.openai_client import OpenAIEngine

log = logging.getLogger(__name__)

FORMATS = ("wav", "pcm")
MAX_HEADER = 64 * 1024  # a WAV header longer than this is not one we can stream
_RATE = re.compile(r"rate\s*=\s*(\d+)", re.IGNORECASE)


def wav_format(header: bytes) -> tuple[int, int, int] | None:
    """(offset of the samples, sample rate, channels) once ``header`` holds a whole WAV
    header up to its ``data`` chunk; None while more bytes are needed.

    Raises BadResponse for what is not 16-bit PCM WAV (the stdlib ``wave`` module reads
    the format chunk; a streamed WAV's sizes may be 0 or 0xFFFFFFFF and are ignored).
    """
    if len(header) < 12:
        return None
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise BadResponse(f"the server did not send WAV (it starts {header[:12]!r})")
    at = 12
    while len(header) >= at + 8:
        size = int.from_bytes(header[at + 4 : at + 8], "little")
        if header[at : at + 4] == b"data":
            try:
                with wave.open(io.BytesIO(header[: at + 8])) as wav:
                    width, rate, channels = (
                        wav.getsampwidth(),
                        wav.getframerate(),
                        wav.getnchannels(),
                    )
            except (wave.Error, EOFError) as exc:
                raise BadResponse(f"unreadable WAV header from the server: {exc}") from None
            if width != 2:
                raise BadResponse(f"the server's WAV has {8 * width}-bit samples, not 16-bit")
            return at + 8, rate, channels
        at += 8 + size + (size & 1)
        if at > MAX_HEADER:
            break
    if len(header) > MAX_HEADER:
        raise BadResponse(f"no audio data in the first {MAX_HEADER} bytes of the server's WAV")
    return None


class OpenAITtsEngine(OpenAIEngine):
    """Speaks each text with one streamed ``audio.speech`` request.

    Audio is yielded as it arrives, cut on whole 16-bit samples, labelled with the rate
    the response states; after each text's audio an empty chunk with
    ``sentence_end=True`` closes it, so no chunk is held back.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        response_format: str = "wav",
        sample_rate: int = 0,  # raw "pcm" only, when the response does not state it
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        if response_format not in FORMATS:
            raise InvalidRequest(
                f"response_format must be one of {', '.join(FORMATS)}, not {response_format!r}"
            )
        self.voice = voice
        self.response_format = response_format
        self.sample_rate = int(sample_rate)

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "voice": request.voice or self.voice,
            "response_format": self.response_format,
        }
        if request.speed is not None:
            arguments["speed"] = request.speed
        if request.options.get("instructions"):
            arguments["instructions"] = request.options["instructions"]
        sentence, rate = 0, self.sample_rate
        async for item in text:
            if item.strip():
                # aclosing: a consumer that stops early (barge-in) frees the connection now
                async with aclosing(self._speak(item, arguments)) as audio:
                    async for rate, pcm in audio:
                        yield Speech(pcm, rate, sentence)
            yield Speech(b"", rate, sentence, sentence_end=True)
            sentence += 1

    async def _speak(
        self, text: str, arguments: dict[str, Any]
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """(sample rate, PCM) pieces of ``text`` as they stream in, whole samples each."""
        client = self.client
        carry, rate, channels = b"", 0, 1
        with self.errors():
            speech = client.audio.speech.with_streaming_response
            async with speech.create(input=text, **arguments) as response:
                if self.response_format == "pcm":
                    rate = self._pcm_rate(response.headers.get("content-type", ""))
                async for data in response.iter_bytes():
                    data = carry + data
                    if not rate:  # still reading the WAV header
                        found = wav_format(data)
                        if found is None:
                            carry = data
                            continue
                        start, rate, channels = found
                        data = data[start:]
                    frame = 2 * channels
                    cut = len(data) - len(data) % frame
                    carry = data[cut:]
                    if cut:
                        yield rate, _mono(data[:cut], channels)
        if not rate and carry:
            raise BadResponse(f"the server's WAV for {text[:40]!r} ended inside its header")
        if carry:
            log.warning(
                "speech for %r ended on part of a sample; dropped %d bytes", text[:40], len(carry)
            )

    def _pcm_rate(self, content_type: str) -> int:
        stated = _RATE.search(content_type)
        if stated:
            return int(stated.group(1))
        if self.sample_rate > 0:
            return self.sample_rate
        raise BadResponse(
            f"the server sent raw PCM ({content_type or 'no content type'}) without its "
            "sample rate: use response_format = 'wav', or set the engine's sample_rate "
            "option to the server's rate (OpenAI's pcm is 24000)"
        )


def _mono(pcm: bytes, channels: int) -> bytes:
    """PCM16 frames of ``channels`` interleaved channels, averaged to mono."""
    if channels == 1:
        return pcm
    frames = np.frombuffer(pcm, "<i2").reshape(-1, channels).astype(np.int32)
    return frames.mean(axis=1).astype("<i2").tobytes()
