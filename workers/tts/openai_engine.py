"""Text-to-speech through the OpenAI speech API (or a compatible server), streamed as PCM."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from workers.engines import Speech, TtsRequest
from workers.openai_client import OpenAIEngine

log = logging.getLogger(__name__)


class OpenAITtsEngine(OpenAIEngine):
    """Speaks each text with one streamed ``audio.speech`` request (``response_format='pcm'``).

    Audio is yielded as it arrives, cut on whole 16-bit samples; after each text's audio
    an empty chunk with ``sentence_end=True`` closes it, so no chunk is held back.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        sample_rate: int = 24000,  # what OpenAI's "pcm" format is
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self.voice = voice
        self.sample_rate = int(sample_rate)

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "voice": request.voice or self.voice,
            "response_format": "pcm",
        }
        if request.speed is not None:
            arguments["speed"] = request.speed
        if request.options.get("instructions"):
            arguments["instructions"] = request.options["instructions"]
        sentence = 0
        async for item in text:
            if item.strip():
                # aclosing: a consumer that stops early (barge-in) frees the connection now
                async with aclosing(self._speak(item, arguments)) as audio:
                    async for pcm in audio:
                        yield Speech(pcm, self.sample_rate, sentence)
            yield Speech(b"", self.sample_rate, sentence, sentence_end=True)
            sentence += 1

    async def _speak(self, text: str, arguments: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        """The PCM of ``text`` as it streams in, each piece a whole number of samples."""
        client = self.client
        carry = b""
        with self.errors():
            speech = client.audio.speech.with_streaming_response
            async with speech.create(input=text, **arguments) as response:
                async for data in response.iter_bytes():
                    data = carry + data
                    cut = len(data) - len(data) % 2
                    carry = data[cut:]
                    if cut:
                        yield data[:cut]
        if carry:
            log.warning("speech for %r ended on half a sample; dropped 1 byte", text[:40])
