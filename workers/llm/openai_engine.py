"""Chat completions through the OpenAI API (or a compatible server), streamed."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from workers.engines import LlmRequest, Message, TextDelta
from workers.errors import InvalidRequest
from workers.openai_client import OpenAIEngine

log = logging.getLogger(__name__)


def _stop(value: str) -> str | list[str]:
    """One stop string, or several as a JSON list: ``'["\\n", "User:"]'``."""
    if value.startswith("["):
        parsed = json.loads(value)
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
        raise ValueError("expected a JSON list of strings")
    return value


# request.options this engine sends, and how each string value converts.
OPTIONS: dict[str, Callable[[str], Any]] = {
    "top_p": float,
    "stop": _stop,
    "seed": int,
    "presence_penalty": float,
    "frequency_penalty": float,
}


def request_options(options: Mapping[str, str]) -> dict[str, Any]:
    """The known ``options`` converted to their API types; others are left out."""
    converted: dict[str, Any] = {}
    for name, value in options.items():
        convert = OPTIONS.get(name)
        if convert is None:
            log.debug("option %r is not an OpenAI chat option; not sent", name)
            continue
        try:
            converted[name] = convert(value)
        except ValueError as exc:
            raise InvalidRequest(f"bad value {value!r} for option {name!r}: {exc}") from exc
    return converted


def chat_message(message: Message) -> dict[str, Any]:
    """One chat message; images become JPEG data-URL parts after the text."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in message.images:
        url = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": message.role, "content": parts}


class OpenAILlmEngine(OpenAIEngine):
    """Streams ``chat.completions`` deltas; the last delta carries the finish reason."""

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        if not request.messages:
            raise InvalidRequest("no messages to answer")
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [chat_message(message) for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            **request_options(request.options),
        }
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
