"""LlmRequest.options: strings in the contract, typed values for the engines.

One parser for every LLM engine, so an option means the same whatever runs it; each
engine says which options it supports. ``stop`` is one string or a JSON list of strings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from workers.errors import InvalidRequest

log = logging.getLogger(__name__)


def stop_strings(value: str) -> list[str]:
    """``'User:'`` or ``'["\\n", "User:"]'``."""
    if value.startswith("["):
        parsed = json.loads(value)
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
        raise ValueError("expected a JSON list of strings")
    return [value]


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "seed": int,
    "stop": stop_strings,
}


def parse_options(options: Mapping[str, str], supported: Collection[str]) -> dict[str, Any]:
    """The ``supported`` options present in ``options``, converted; others are skipped
    (logged); a value that does not convert is an InvalidRequest."""
    parsed: dict[str, Any] = {}
    for name, value in options.items():
        if name not in supported:
            log.debug("option %r is not supported by this engine; ignored", name)
            continue
        try:
            parsed[name] = CONVERTERS[name](value)
        except ValueError as exc:
            raise InvalidRequest(f"bad value {value!r} for option {name!r}: {exc}") from exc
    return parsed
