"""Captions from a vision LLM: the image and an instruction in one user message, the
answer's text joined. The ``openai`` and ``llama_cpp`` caption engines are this over
the LLM engines of the same names (workers/llm/), so a caption worker takes the same
options as a vision LLM worker plus ``prompt``."""

from __future__ import annotations

from typing import Any

from workers.engines import LlmEngine, LlmRequest, Message
from workers.kinds import CaptionRequest

DEFAULT_PROMPT = (
    "Describe what this camera image shows in one or two plain sentences, for someone "
    "who cannot see it."
)


class LlmCaptionEngine:
    """``llm``: a vision LLM engine; ``prompt``: the default instruction."""

    def __init__(self, llm: LlmEngine, prompt: str = DEFAULT_PROMPT, temperature: float = 0.2):
        self.llm, self.prompt, self.temperature = llm, prompt, float(temperature)
        self.model = llm.model

    def load(self) -> None:
        self.llm.load()

    async def run(self, request: CaptionRequest) -> str:
        message = Message("user", request.prompt or self.prompt, (request.image,))
        ask = LlmRequest((message,), self.temperature, request.max_tokens, dict(request.options))
        return "".join([delta.text async for delta in self.llm.run(ask)]).strip()

    def close(self) -> None:
        self.llm.close()


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the caption engine's own options, the LLM engine's)."""
    own: dict[str, Any] = {k: options.pop(k) for k in ("prompt", "temperature") if k in options}
    return own, options
