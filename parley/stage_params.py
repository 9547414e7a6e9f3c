"""The parameters each stage kind reads from its ``[pipelines.P.STAGE]`` table, with
their TOML types and ranges, so a wrong type, a number out of range (or nan or inf) or
an unknown key is refused when the config loads (naming the stage, the key and the
value) rather than failing, or being ignored, every turn.

The server reads these (server/pipeline.py for stt, server/answer.py for llm,
speech_llm and tts, server/context_stages.py for analyse, retrieve and caption): a
parameter read there is declared here, and the server sends a worker only these, so
no other key could reach any engine, built-in or plugin (a ``parley.engines`` entry
point). An engine's own settings go in ``options`` (a table, passed to the worker as
strings) or in its pool's options. ``list`` is a list of strings, ``dict`` a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley.config_values import check_type, range_problem
from parley.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter: its TOML type and, for a number, its range (``above``: strictly
    more than ``low``). Every float must be finite."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: bool = False


TEXT, TABLE, TEXTS, FLAG = Param(str), Param(dict), Param(list), Param(bool)
COUNT = Param(int, low=1)  # max_tokens, top_k: 1 or more

_ANSWER: dict[str, Param] = {
    "system_prompt": TEXT,
    "temperature": Param(float, low=0),
    "max_tokens": COUNT,
    "history_turns": Param(int, low=0),
    "vision": FLAG,
    "options": TABLE,
}

PARAMS: dict[str, dict[str, Param]] = {
    "stt": {"language": TEXT, "prompt": TEXT},
    "llm": _ANSWER,
    "speech_llm": {**_ANSWER, "voice": TEXT, "text_language": TEXT},
    "tts": {
        "voice": TEXT,
        "speed": Param(float, low=0, above=True),
        "options": TABLE,
        "text_language": TEXT,
    },
    "analyse": {
        "on": TEXT,
        "context": TEXT,
        "options": TABLE,
        "labels": TEXTS,
        "instruction": TEXT,
        "max_tokens": COUNT,
    },
    "retrieve": {"top_k": COUNT, "context": TEXT, "options": TABLE},
    "caption": {"prompt": TEXT, "max_tokens": COUNT, "context": TEXT, "options": TABLE},
}


def check_params(kind: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``params`` with each checked against its declaration (an integer given for a
    float becomes a float); ConfigError naming ``where`` and the key for a wrong type,
    a number out of range or not finite, or a key the kind does not declare."""
    declared = PARAMS.get(kind, {})
    checked = {}
    for key, value in params.items():
        if key not in declared:
            known = ", ".join(["pool", "kind", "inputs", *declared])
            hint = (
                "; an engine's own settings go in options = { ... }"
                if "options" in declared
                else ""
            )
            raise ConfigError(
                f"{where}: unknown parameter {key!r} (known for kind {kind}: {known}){hint}"
            )
        param = declared[key]
        checked[key] = check_type(value, param.kind, key, where)
        if param.kind in (int, float) and (
            problem := range_problem(checked[key], param.low, param.high, param.above)
        ):
            raise ConfigError(f"{where}: {key} = {checked[key]!r}: {problem}")
    return checked
