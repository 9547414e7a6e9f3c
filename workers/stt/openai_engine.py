"""Speech-to-text through the OpenAI transcription API (or a compatible server)."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from typing import Any

from workers.engines import SttRequest, Transcript
from workers.errors import InvalidRequest
from workers.openai_client import OpenAIEngine


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """``pcm`` (PCM16LE mono) as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


class OpenAISttEngine(OpenAIEngine):
    """Collects the turn's audio, uploads it as one WAV file, yields one final transcript."""

    def __init__(
        self,
        model: str = "gpt-4o-mini-transcribe",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        if request.sample_rate <= 0:
            raise InvalidRequest(f"bad sample rate {request.sample_rate}")
        pcm = bytearray()
        async for chunk in audio:
            pcm += chunk
        if len(pcm) % 2:
            raise InvalidRequest("PCM16 audio must have an even number of bytes")
        language = request.language or ""
        seconds = len(pcm) / 2 / request.sample_rate
        if not pcm:  # nothing to transcribe; the API would refuse an empty file
            yield Transcript("", final=True, language=language, audio_seconds=0.0)
            return

        options: dict[str, Any] = {}
        if request.language:
            options["language"] = request.language
        if request.prompt:
            options["prompt"] = request.prompt
        file = ("speech.wav", wav_bytes(bytes(pcm), request.sample_rate), "audio/wav")
        client = self.client
        with self.errors():
            result = await client.audio.transcriptions.create(
                file=file, model=self.model, **options
            )
        text = result if isinstance(result, str) else getattr(result, "text", "")
        yield Transcript(text.strip(), final=True, language=language, audio_seconds=seconds)
