"""Fixtures for the local engines: the tiny models, built once and cached on disk.

The cache survives between runs (``PARLEY_TEST_CACHE``, else ``<repo>/.cache/test-models``);
``build_tiny_models`` skips the work when its stamp matches.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from workers.errors import MissingExtra

CACHE = Path(
    os.environ.get(
        "PARLEY_TEST_CACHE", str(Path(__file__).resolve().parents[2] / ".cache" / "test-models")
    )
)


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """Paths of the tiny whisper dir, piper voice and stories260K GGUF (see tiny_models.py)."""
    from workers.tiny_models import build_tiny_models

    try:
        return build_tiny_models(CACHE / "tiny")
    except MissingExtra as exc:
        pytest.skip(str(exc))


async def tiny_engines(models: dict[str, Path]) -> dict[str, Any]:
    """The real faster-whisper, llama.cpp and piper engines on the tiny models, loaded,
    by stage (stt, llm, tts)."""
    from workers.llm.llama_cpp_engine import LlamaCppEngine
    from workers.stt.faster_whisper_engine import FasterWhisperEngine
    from workers.tts.piper_engine import PiperEngine

    engines = {
        "stt": FasterWhisperEngine(str(models["whisper"]), compute_type="float32"),
        "llm": LlamaCppEngine(str(models["gguf"]), chat_format="alpaca", n_ctx=512, seed=1),
        "tts": PiperEngine(str(models["voice"])),
    }
    for engine in engines.values():
        await asyncio.to_thread(engine.load)
    return engines
