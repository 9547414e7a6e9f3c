"""Chat completions through the OpenAI API (or a compatible server), streamed.

With an OpenAI-compatible server (``base_url`` set: llama.cpp's server, vLLM, Ollama...)
the request also asks it to stop at the chat-template tokens of
:mod:`parley.chat_tokens` (``template_stops``: None, the default, means "for a
compatible server only": OpenAI's own API takes at most four stop strings, and its
reasoning models refuse any).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from parley.chat_tokens import STOP_STRINGS
from workers.engines import LlmRequest, Message, TextDelta
from workers.errors import InvalidRequest
from workers.llm import vision
from workers.llm.options import parse_options
from workers.openai_client import OpenAIEngine

log = logging.getLogger(__name__)


# The request options the chat completions API takes (see workers/llm/options.py).
SUPPORTED = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def chat_message(message: Message) -> dict[str, Any]:
    """One chat message; images become JPEG data-URL parts after the text."""
    return {"role": message.role, "content": vision.content_parts(message)}


class OpenAILlmEngine(OpenAIEngine):
    """Streams ``chat.completions`` deltas; the last delta carries the finish reason."""

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        template_stops: bool | None = None,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self.template_stops = template_stops

    def _stops(self, asked: list[str]) -> list[str]:
        """The stop strings to send: those asked for, plus the template tokens."""
        wanted = self.template_stops
        if wanted is None:  # only for a compatible server, not OpenAI's own API
            wanted = self.client.base_url.host != "api.openai.com"
        return [*asked, *(s for s in STOP_STRINGS if s not in asked)] if wanted else asked

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        if not request.messages:
            raise InvalidRequest("no messages to answer")
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [chat_message(message) for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            **parse_options(request.options, SUPPORTED),
        }
        stops = self._stops(list(arguments.pop("stop", [])))
        if stops:
            arguments["stop"] = stops
        finish_reason: str | None = None
        client = self.client
        with self.errors():
            stream = await client.chat.completions.create(stream=True, **arguments)
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield TextDelta(choice.delta.content)
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        yield TextDelta("", finish_reason=finish_reason)
