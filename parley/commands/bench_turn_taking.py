"""`parley bench turn`, by turn-taking setting: voice-to-voice latency on the edge's
clock (end of speech -> first answer audio played) next to the framework overhead, for
several ``[turn]`` / ``[vad]`` settings side by side in one run, with ratios.

A setting is written ``STRATEGY[@MIN_SILENCE_MS][+preemptive]``: ``silence@500`` (the
turn ends after 500 ms of silence), ``silence@500+preemptive`` (the same, with the
answer started at the first check point, ``[turn] check_after_ms``), ``smart_turn``
(the end-of-turn model decides; it needs its model file: ``parley models pull``),
``smart_turn+preemptive``. Each setting gets its own freshly started processes (server
with that setting, workers) and the same spoken turns.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.commands.bench import bench_turns, machine, percentiles, report, summarise
from parley.commands.models import ensure_models
from parley.config import TURN_STRATEGIES, Config
from parley.errors import ParleyError

DEFAULT_SETTINGS = "silence@500,silence@500+preemptive,smart_turn+preemptive"
# The target for smart_turn + preemptive with instant engines (ms).
V2V_TARGET = {"voice_to_voice_p50_ms": 300.0, "voice_to_voice_p90_ms": 400.0}
SMART_TURN_FILE = "smart-turn-v3.2-cpu.onnx"
_SETTING = re.compile(r"^(?P<strategy>[a-z_]+)(@(?P<silence>\d+))?(?P<pre>\+preemptive)?$")


@dataclass(frozen=True)
class TurnSetting:
    """One column of the comparison."""

    name: str
    strategy: str
    preemptive: bool
    min_silence_ms: int | None  # None: the configured [vad] min_silence_ms

    def env(self) -> dict[str, str]:
        """The server's settings, as environment variables."""
        out = {
            "PARLEY_TURN_STRATEGY": self.strategy,
            "PARLEY_TURN_PREEMPTIVE": "true" if self.preemptive else "false",
        }
        if self.min_silence_ms is not None:
            out["PARLEY_VAD_MIN_SILENCE_MS"] = str(self.min_silence_ms)
        return out


def parse_settings(text: str) -> list[TurnSetting]:
    """``"silence@500,smart_turn+preemptive"`` -> settings; ParleyError when one is not
    ``STRATEGY[@MIN_SILENCE_MS][+preemptive]`` or names an unknown strategy."""
    settings = []
    for name in (part.strip() for part in text.split(",")):
        match = _SETTING.match(name)
        if match is None or match["strategy"] not in TURN_STRATEGIES:
            known = " or ".join(TURN_STRATEGIES)
            raise ParleyError(
                f"bad turn setting {name!r}: write STRATEGY[@MIN_SILENCE_MS][+preemptive], "
                f"STRATEGY {known} (e.g. silence@500+preemptive)"
            )
        silence = int(match["silence"]) if match["silence"] else None
        settings.append(TurnSetting(name, match["strategy"], bool(match["pre"]), silence))
    if len({s.name for s in settings}) != len(settings):
        raise ParleyError(f"a turn setting is listed twice in {text!r}")
    return settings


def smart_turn_model(config: Config) -> Path:
    """Where the server looks for the end-of-turn model ([turn] model_path, else the
    models directory)."""
    path = config.turn.model_path
    return Path(path).expanduser() if path else config.models_dir / SMART_TURN_FILE


def check_models(config: Config, settings: list[TurnSetting]) -> None:
    """Fail before starting anything when a setting needs a model file that is missing."""
    if any(s.strategy == "smart_turn" for s in settings):
        model = smart_turn_model(config)
        if not model.is_file():
            raise ParleyError(
                f"the smart_turn setting needs the end-of-turn model, and {model} is missing: "
                "run `parley models pull` (or leave smart_turn out of --settings)"
            )


def voice_to_voice(records: list[dict[str, float]]) -> dict[str, Any]:
    """The edge-clock figures and the speculation counts of one setting's turns."""
    v2v = [r["edge_voice_to_voice_ms"] for r in records if "edge_voice_to_voice_ms" in r]
    speculated = [r for r in records if "speculation_committed_ms" in r]
    return {
        "voice_to_voice_ms": percentiles(v2v),
        "endpointing_ms": percentiles([r["endpointing_ms"] for r in records]),
        "confirm_wait_ms": percentiles([r["confirm_ms"] for r in records if "confirm_ms" in r]),
        "speculation": {
            "committed_turns": len(speculated),
            "discarded": int(sum(r.get("speculations_discarded", 0) for r in records)),
            "wasted_model_ms": round(
                sum(r.get("speculation_model_wasted_ms", 0.0) for r in records), 3
            ),
        },
    }


def ratios(columns: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each setting's voice-to-voice p50/p90 over the first setting's."""
    base = columns[0]["voice_to_voice_ms"]
    out = {}
    for column in columns[1:]:
        mine = column["voice_to_voice_ms"]
        out[f"{column['setting']} / {columns[0]['setting']}"] = {
            p: round(mine[p] / base[p], 3) for p in ("p50", "p90") if base.get(p) and p in mine
        }
    return out


def run_turn_taking(args: argparse.Namespace, config: Config) -> int:
    settings = parse_settings(args.settings or DEFAULT_SETTINGS)
    check_models(config, settings)
    pipeline = args.engines
    ensure_models(config, pipeline)
    columns = []
    for setting in settings:
        run = asyncio.run(
            bench_turns(config, pipeline, args.turns, warmup=2, fast=args.fast, env=setting.env())
        )
        column = {
            "setting": setting.name,
            "strategy": setting.strategy,
            "preemptive": setting.preemptive,
            "min_silence_ms": setting.min_silence_ms or config.vad.min_silence_ms,
            **voice_to_voice(run.records),
            **summarise(run.records),
        }
        if setting.strategy == "smart_turn" and setting.preemptive:
            p50, p90 = (column["voice_to_voice_ms"].get(p) for p in ("p50", "p90"))
            column["meets_voice_to_voice_target"] = (
                p50 is not None
                and p90 is not None
                and p50 <= V2V_TARGET["voice_to_voice_p50_ms"]
                and p90 <= V2V_TARGET["voice_to_voice_p90_ms"]
            )
        columns.append(column)
    result = {
        "benchmark": "turn",
        "engines": args.engines,
        "pipeline": pipeline,
        "paced": not args.fast,
        "check_after_ms": config.turn.check_after_ms,
        "settings": columns,
        "ratios": ratios(columns),
        "voice_to_voice_target": V2V_TARGET,
        "machine": machine(),
    }
    lines = [
        f"{c['setting']:28s} voice-to-voice p50 {c['voice_to_voice_ms'].get('p50')} ms, "
        f"p90 {c['voice_to_voice_ms'].get('p90')} ms; overhead p50 "
        f"{c['overhead_ms'].get('p50')} ms"
        for c in columns
    ]
    report(result, args, "\n".join(lines))
    return 0
