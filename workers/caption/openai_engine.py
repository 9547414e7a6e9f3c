"""Captions from an OpenAI-compatible vision chat model (``gpt-4o-mini``, or a
compatible server's vision model); options as the ``openai`` LLM engine plus
``prompt`` and ``temperature``."""

from __future__ import annotations

from typing import Any

from workers.caption.llm_caption import LlmCaptionEngine, split_options
from workers.llm.openai_engine import OpenAILlmEngine


class OpenAICaptionEngine(LlmCaptionEngine):
    def __init__(self, **options: Any) -> None:
        own, llm = split_options(dict(options))
        super().__init__(OpenAILlmEngine(**llm), **own)
