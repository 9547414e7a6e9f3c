"""`parley compare RUN_A RUN_B [...]`: runs of one dataset side by side
(research/compare.py); `--json` prints the whole comparison, per-item rows included."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from parley.commands.dataset import research_store
from parley.config import Config


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(figures: Mapping[str, Any]) -> str:
    if not figures.get("n"):
        return "-"
    return "/".join(_cell(figures[p]) for p in ("p50", "p90", "p99"))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return lines


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_comparison(result: dict[str, Any], items: int) -> str:
    """The comparison as text tables (``items`` per-item rows at most)."""
    summary = result["summary"]
    names = [s["run"] for s in summary]
    out = [f"dataset {result['dataset']}" + (f", tag {result['tag']}" if result["tag"] else "")]
    out += _table(
        ["run", "pipeline", "done", "failed", "WER", "CER", "v2v ms p50/p90/p99", "first audio"],
        [
            [
                s["run"],
                s["pipeline"],
                str(s["done"]),
                str(s["failed"] + s["not_replayed"]),
                _percent(s["wer"]),
                _percent(s["cer"]),
                _pct(s["latency"]["voice_to_voice_ms"]),
                _pct(s["latency"]["first_audio_ms"]),
            ]
            for s in summary
        ],
    )
    out.append("")
    out.append("per stage, ms p50/p90/p99 (model | transfer)")
    stages = list(dict.fromkeys(st["stage"] for s in summary for st in s["stages"]))
    rows = []
    for stage in stages:
        row = [stage]
        for s in summary:
            found = next((st for st in s["stages"] if st["stage"] == stage), None)
            row.append(f"{_pct(found['model'])} | {_pct(found['transfer'])}" if found else "-")
        rows.append(row)
    out += _table(["stage", *names], rows)
    scored = [s for s in summary if any(v["count"] for v in s["scores"].values())]
    if scored:
        out.append("")
        out += _table(
            ["run", *summary[0]["scores"]],
            [
                [
                    s["run"],
                    *(f"{_cell(v['mean'], 2)} (n={v['count']})" for v in s["scores"].values()),
                ]
                for s in scored
            ],
        )
    if result["paired"]:
        out.append("")
        out.append("paired (b - a, 95% bootstrap CI; items where a / b did better, ties)")
        out += _table(
            ["a", "b", "metric", "n", "a", "b", "b - a", "95% CI", "a better", "ties", "b better"],
            [
                [
                    p["a"],
                    p["b"],
                    p["metric"],
                    str(p["n"]),
                    _cell(p["mean_a"], 3),
                    _cell(p["mean_b"], 3),
                    _cell(p["difference"], 3),
                    "-" if p["ci95"] is None else f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]",
                    str(p["a_better"]),
                    str(p["ties"]),
                    str(p["b_better"]),
                ]
                for p in result["paired"]
                if p["n"]
            ],
        )
    shown = result["items"][:items]
    if shown:
        out.append("")
        out.append(f"items (first {len(shown)} of {result['items_total']})")
        for item in shown:
            out.append(f"{item['key']}: reference {item['reference_transcript']!r}")
            for name, got in item["runs"].items():
                detail = got["error"] if got["status"] != "done" else repr(got["transcript"])
                wer = f" WER {_percent(got['wer'])}" if got["wer"] is not None else ""
                out.append(f"  {name}: {got['status']} {detail}{wer} -> {got['response']!r}")
    return "\n".join(out)


def run_compare(args: argparse.Namespace, config: Config) -> int:
    from research.compare import compare

    with research_store(config):
        result = compare(
            args.runs,
            tag=args.tag or "",
            item_limit=None if args.json else args.items,
            resamples=args.resamples,
        )
    print(json.dumps(result, indent=2) if args.json else format_comparison(result, args.items))
    return 0
