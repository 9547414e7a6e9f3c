"""Captions from a local vision GGUF (LLaVA, Moondream, Qwen2.5-VL...) with its
multimodal projector: options as the ``llama_cpp`` LLM engine (``model``,
``clip_model``, ``chat_handler``...) plus ``prompt`` and ``temperature``."""

from __future__ import annotations

from typing import Any

from workers.caption.llm_caption import LlmCaptionEngine, split_options
from workers.errors import InvalidRequest
from workers.llm.llama_cpp_engine import LlamaCppEngine


class LlamaCppCaptionEngine(LlmCaptionEngine):
    def __init__(self, **options: Any) -> None:
        own, llm = split_options(dict(options))
        if not llm.get("clip_model"):
            raise InvalidRequest("a llama_cpp caption engine needs clip_model (the projector)")
        super().__init__(LlamaCppEngine(**llm), **own)
