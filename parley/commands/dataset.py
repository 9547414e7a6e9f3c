"""`parley dataset`: datasets of recordings with references, for `parley replay`.

- `parley dataset import NAME DIR [--references FILE]`: a folder plus a manifest
  (TSV/CSV/JSONL; LibriSpeech and Common Voice layouts detected);
- `parley dataset from-turns NAME --group G | --filter KEY=VALUE ...`: stored turns;
- `parley dataset export NAME[@VERSION] DIR`, `list`, `show NAME[@VERSION]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parley.config import Config
from parley.errors import ParleyError

EXTRA_HINT = (
    "datasets, replay and compare need the [research] extra: pip install 'parley[research]'"
)


def require_extra() -> None:
    try:
        import jiwer  # noqa: F401
        import soundfile  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        raise ParleyError(f"{EXTRA_HINT} ({exc.name} is missing)") from None


@contextlib.contextmanager
def research_store(config: Config) -> Iterator[None]:
    """Check the [research] extra and open the store for the duration."""
    require_extra()
    from parley import db

    db.open_database(config.database_url)
    with db.database.connection_context():
        yield


def _filters(values: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options (each may also be a query string ``a=1&b=2``)."""
    out: dict[str, str] = {}
    for value in values:
        try:
            pairs = urllib.parse.parse_qsl(value, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ParleyError(f"--filter needs KEY=VALUE, not {value!r}") from None
        out.update(pairs)
    return out


def _report(args: argparse.Namespace, data: dict[str, Any], line: str) -> None:
    print(json.dumps(data, indent=2) if args.json else line)


def _import(args: argparse.Namespace, config: Config) -> int:
    from research.importing import create_dataset
    from research.manifests import read_folder

    folder = Path(args.folder)
    references = Path(args.references) if args.references else None
    layout, rows = read_folder(folder, references, args.layout)
    source = f"import of {folder.resolve()} ({layout}"
    source += f", {references.name})" if references else ")"
    dataset = create_dataset(
        args.name,
        rows,
        config.data_dir,
        source=source,
        description=args.description,
        tags=args.tag,
        new_version=args.new_version,
    )
    _created(args, dataset, layout)
    return 0


def _from_turns(args: argparse.Namespace, config: Config) -> int:
    from research.from_turns import rows_from_turns, select_turns
    from research.importing import create_dataset

    if args.group is None and not args.filter:
        raise ParleyError("choose the turns: --group G or --filter KEY=VALUE (repeatable)")
    what, turns, conversation = select_turns(args.group, _filters(args.filter))
    rows = rows_from_turns(
        turns,
        config.data_dir,
        conversation=conversation,
        multi_turn=args.multi_turn,
        frame_lead_s=config.vad.pre_roll_ms / 1000.0,
    )
    dataset = create_dataset(
        args.name,
        rows,
        config.data_dir,
        source=f"stored {what}",
        description=args.description,
        tags=args.tag,
        new_version=args.new_version,
    )
    _created(args, dataset, "turns")
    return 0


def _created(args: argparse.Namespace, dataset: Any, layout: str) -> None:
    from research.datasets import describe

    described = describe(dataset)
    items = described["items"]
    referenced = sum(1 for item in items if item["reference_transcript"])
    seconds = sum(item["seconds"] for item in items)
    _report(
        args,
        {k: v for k, v in described.items() if k != "runs"},
        f"dataset {dataset.name}@{dataset.version}: {len(items)} items ({seconds:.1f} s of "
        f"audio, {referenced} with a reference transcript; {layout} layout)",
    )


def _export(args: argparse.Namespace, config: Config) -> int:
    from research.datasets import export, find

    dataset = find(args.dataset)
    count = export(dataset, Path(args.folder), config.data_dir)
    print(f"{dataset.name}@{dataset.version}: {count} items written to {args.folder}")
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    from research.datasets import summaries

    rows = summaries()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no datasets yet: `parley dataset import NAME DIR` or `parley dataset from-turns`")
    for row in rows:
        print(
            f"{row['name']}@{row['version']:<4} {row['items']:6d} items {row['seconds']:9.1f} s "
            f"{row['runs']:4d} runs  {row['created_at'][:19]}  {row['source']}"
        )
    return 0


def _show(args: argparse.Namespace, config: Config) -> int:
    from research.datasets import describe, find

    described = describe(find(args.dataset))
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    print(f"{described['name']}@{described['version']}: {described['source']}")
    for item in described["items"]:
        place = (
            f" [{item['conversation']} #{item['conversation_position']}]"
            if item["conversation"]
            else ""
        )
        tags = f" tags={','.join(item['tags'])}" if item["tags"] else ""
        print(
            f"  {item['position']:5d} {item['key']}{place}: {item['seconds']:.2f} s, "
            f"{item['sample_rate']} Hz x{item['channels']}{tags}  "
            f"ref={item['reference_transcript']!r}"
        )
    for run in described["runs"]:
        print(f"  run {run['name']} ({run['pipeline']}, {run['started_at'][:19]})")
    return 0


COMMANDS = {
    "import": _import,
    "from-turns": _from_turns,
    "export": _export,
    "list": _list,
    "show": _show,
}


def run_dataset(args: argparse.Namespace, config: Config) -> int:
    with research_store(config):
        return COMMANDS[args.dataset_command](args, config)
