"""The parameters each stage kind reads from its ``[pipelines.P.STAGE]`` table, with
their TOML types, so a wrong type is refused when the config loads (naming the stage,
the key and the value) rather than failing every turn.

The server reads these (server/pipeline.py for stt, server/answer.py for llm,
speech_llm and tts, server/context_stages.py for analyse, retrieve and caption): a
parameter read there is declared here. ``list`` is a list of strings, ``dict`` a table
(``options``: engine-specific, passed to the worker as strings). Keys not declared
here are left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.config_values import check_type

_ANSWER: dict[str, type] = {
    "system_prompt": str,
    "temperature": float,
    "max_tokens": int,
    "history_turns": int,
    "vision": bool,
    "options": dict,
}

PARAMS: dict[str, dict[str, type]] = {
    "stt": {"language": str, "prompt": str},
    "llm": _ANSWER,
    "speech_llm": {**_ANSWER, "voice": str, "text_language": str},
    "tts": {"voice": str, "speed": float, "options": dict, "text_language": str},
    "analyse": {
        "on": str,
        "context": str,
        "options": dict,
        "labels": list,
        "instruction": str,
        "max_tokens": int,
    },
    "retrieve": {"top_k": int, "context": str, "options": dict},
    "caption": {"prompt": str, "max_tokens": int, "context": str, "options": dict},
}


def check_params(kind: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``params`` with each declared parameter checked against its type (an integer
    given for a float becomes a float); ConfigError naming ``where`` and the key."""
    declared = PARAMS.get(kind, {})
    return {
        key: check_type(value, declared[key], key, where) if key in declared else value
        for key, value in params.items()
    }
