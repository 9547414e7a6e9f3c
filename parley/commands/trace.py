"""`parley trace show TRACE_ID`: a stored trace, readable without a browser."""

from __future__ import annotations

import argparse
import json
from typing import Any

from parley import db
from parley.config import Config
from parley.errors import ParleyError


def stored_spans(trace_id: str) -> list[dict[str, Any]]:
    with db.database.connection_context():
        rows = db.Span.select().where(db.Span.trace_id == trace_id).order_by(db.Span.start_ns)
        return [
            {
                "name": row.name,
                "service.name": row.service,
                "span_id": row.span_id,
                "parent_id": row.parent_id,
                "kind": row.kind,
                "start_ns": row.start_ns,
                "end_ns": row.end_ns,
                "duration_ms": round((row.end_ns - row.start_ns) / 1e6, 3),
                "status": row.status,
                "attributes": row.attributes,
            }
            for row in rows
        ]


def _tree(spans: list[dict[str, Any]]) -> list[str]:
    """Indented lines, children under parents, offsets from the trace's start."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else ""
        children.setdefault(parent, []).append(span)
    origin = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            offset = (span["start_ns"] - origin) / 1e6
            lines.append(
                f"{offset:9.1f} ms {span['duration_ms']:9.1f} ms  {'  ' * depth}{span['name']}"
                f"  [{span['service.name']}]{'  ' + span['status'] if span['status'] else ''}"
            )
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return lines


def run_trace(args: argparse.Namespace, config: Config) -> int:
    db.open_database(config.database_url)
    spans = stored_spans(args.trace_id)
    if not spans:
        raise ParleyError(f"no spans stored for trace {args.trace_id} in {config.database_url}")
    if args.json:
        print(json.dumps(spans, indent=2))
    else:
        print("\n".join(_tree(spans)))
    return 0
