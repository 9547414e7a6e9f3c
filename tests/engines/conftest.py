"""Fixtures for the local engines: the tiny models, built once and cached on disk.

The cache survives between runs (``PARLEY_TEST_CACHE``, else ``<repo>/.cache/test-models``);
``build_tiny_models`` skips the work when its stamp matches.
"""

from __future__ import annotations

import os
from pathlib import Path

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
