"""A speech LLM over the OpenAI chat completions API (or a compatible server): the
turn's audio goes in as an ``input_audio`` content part (WAV), and the answer comes
back streamed as text or, with ``audio_out``, as audio (``pcm16``) with its transcript.

Works with OpenAI's audio models (``gpt-4o-audio-preview``, ``gpt-4o-mini-audio-preview``)
and with vLLM serving an audio-in model such as Ultravox or Qwen2.5-Omni (text out:
Parley's TTS then speaks it). ``audio_out`` is asked for per request by the pipeline
(the stage's ``audio_out`` parameter); ``sample_rate`` is the rate of the audio the
server sends (24000 for OpenAI's ``pcm16``).
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator
from typing import Any

from workers.errors import BadResponse, InvalidRequest
from workers.kinds import SpeechDelta, SpeechLlmRequest
from workers.llm import vision
from workers.llm.options import parse_options
from workers.openai_client import OpenAIEngine

SUPPORTED = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


class OpenAISpeechLlmEngine(OpenAIEngine):
    """``model``, ``voice`` (default voice for audio out), ``sample_rate`` (of the
    audio the server returns), ``base_url``, ``api_key``, ``timeout``, ``max_retries``."""

    def __init__(
        self,
        model: str = "gpt-4o-mini-audio-preview",
        voice: str = "alloy",
        sample_rate: int = 24000,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self.voice, self.sample_rate = voice, int(sample_rate)

    def _messages(self, request: SpeechLlmRequest, pcm: bytes) -> list[dict[str, Any]]:
        *history, turn = request.messages
        messages: list[dict[str, Any]] = [
            {"role": m.role, "content": vision.content_parts(m)} for m in history
        ]
        parts = vision.content_parts(turn)
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": parts}] if isinstance(parts, str) and parts else []
        )
        content += [] if isinstance(parts, str) else parts
        audio = base64.b64encode(wav_bytes(pcm, request.sample_rate)).decode("ascii")
        content.append({"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}})
        messages.append({"role": "user", "content": content})
        return messages

    async def run(
        self, request: SpeechLlmRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[SpeechDelta]:
        if not request.messages or request.messages[-1].role != "user":
            raise InvalidRequest("a speech LLM request ends with the user's message")
        pcm = b"".join([chunk async for chunk in audio])
        if not pcm:
            raise InvalidRequest("no audio to answer")
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request, pcm),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            **parse_options(request.options, SUPPORTED),
        }
        if request.audio_out:
            arguments["modalities"] = ["text", "audio"]
            arguments["audio"] = {"voice": request.voice or self.voice, "format": "pcm16"}
        finish: str | None = None
        client = self.client
        with self.errors():
            stream = await client.chat.completions.create(stream=True, **arguments)
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None:
                            out = self._delta(delta)
                            if out is not None:
                                yield out
                        finish = choice.finish_reason or finish
        yield SpeechDelta(finish_reason=finish)

    def _delta(self, delta: Any) -> SpeechDelta | None:
        audio = (delta.model_extra or {}).get("audio") or getattr(delta, "audio", None)
        text = delta.content or ""
        pcm = b""
        if audio is not None:
            text += _field(audio, "transcript") or ""
            data = _field(audio, "data")
            if data:
                try:
                    pcm = base64.b64decode(data, validate=True)
                except ValueError as exc:
                    raise BadResponse(f"audio that is not base64: {exc}") from exc
        if not (text or pcm):
            return None
        return SpeechDelta(text=text, pcm=pcm, sample_rate=self.sample_rate if pcm else 0)
