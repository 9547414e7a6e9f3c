"""`parley bench replay`: how fast datasets replay, and how fast runs compare.

1. Throughput: a server and the instant pipeline's workers run as processes on loopback
   (store in a scratch directory); a dataset of ``--items`` copies of the bundled spoken
   command (alternately 44.1 kHz stereo and 16 kHz mono) is replayed over the Converse
   path at ``--pace fast`` with ``--concurrency`` streams. Reported: items per minute,
   wall clock from the first stream to the last item recorded.
2. Comparison: a scratch store seeded with a ``--compare-items`` dataset replayed by the
   three sample pipelines (research/sample_runs.py: latency records, mishearings, 20 %
   of turns annotated), and :func:`research.compare.compare` over the three runs timed
   in-process: the first call (a cold database), then the median of ``--repeat`` calls
   shaped like a page (every figure plus 100 item rows; the bootstrap computed each
   time), the same page again (intervals from the cache), one tag's page, and every
   item row as ``parley compare --json`` prints them.
3. The admin's Compare page itself over HTTP on the same store (waitress, a logged-in
   client; parley/commands/bench_compare_page.py): the page with its 50 item rows,
   charts and tables, as a browser receives it.

``--compare-only`` skips part 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from parley.commands.bench import machine, report, scratch_stack
from parley.commands.bench_compare_page import compare_page_times
from parley.commands.dataset import require_extra, research_store
from parley.config import Config
from parley.errors import ParleyError

TARGET_MS = 1000.0  # the Compare page at 10,000 items x 3 pipelines (served over HTTP)
PAGE_ROWS = 100


def _clips(scratch: Path) -> list[Path]:
    """The bundled command as recorded (44.1 kHz stereo) and as 16 kHz mono."""
    import numpy as np
    import soundfile

    from parley.audio import AudioConverter, float_to_pcm16, read_audio
    from parley.commands.demo import DEMO_WAV

    samples, rate = read_audio(DEMO_WAV)
    converter = AudioConverter(rate, samples.shape[1] if samples.ndim > 1 else 1)
    mono = np.concatenate([converter.convert(samples.tobytes()), converter.flush()])
    mono_path = scratch / "command-16k-mono.wav"
    soundfile.write(mono_path, float_to_pcm16(mono), 16000, subtype="PCM_16")
    return [DEMO_WAV, mono_path]


async def _throughput(config: Config, items: int, concurrency: int) -> dict[str, Any]:
    from parley import db
    from research import runs
    from research.importing import create_dataset
    from research.manifests import ManifestRow
    from research.replay import Replayer, ReplayOptions

    with tempfile.TemporaryDirectory(prefix="parley-bench-replay-") as name:
        scratch = Path(name)
        config, stack = scratch_stack(config, ["instant"], scratch)
        clips = _clips(scratch)
        rows = [
            ManifestRow(
                f"item {i}", f"command-{i:04d}", clips[i % 2], "turn on the living room lamp"
            )
            for i in range(items)
        ]
        db.open_database(config.database_url)
        with db.database.connection_context():
            dataset = create_dataset("bench", rows, config.data_dir, source="bench")
            run, _ = runs.open_run("bench-instant", dataset, "instant", config, "fast")
        started = await stack.start()
        try:
            if len(started) != len(stack.specs):
                raise ParleyError(
                    "some of the benchmark's processes are already running (e.g. a `parley "
                    "up`); stop them so the benchmark measures processes it started itself"
                )
            edge = dataclasses.replace(config.edge, server=f"127.0.0.1:{config.server.port}")
            options = ReplayOptions(fast=True, concurrency=concurrency)
            begin = time.perf_counter()
            tallies = await Replayer(edge, config.data_dir, options).replay(dataset, [run])
            wall = time.perf_counter() - begin
        finally:
            stack.stop()
            db.database.close()
    tally = tallies[0]
    return {
        "items": items,
        "concurrency": concurrency,
        "pace": "fast",
        "pipeline": "instant",
        "done": tally.done,
        "failed": tally.failed,
        "errors": tally.errors,
        "wall_s": round(wall, 2),
        "items_per_minute": round(tally.done / wall * 60.0, 1) if wall else None,
    }


def _timed(call: Any, repeat: int, *, cached: bool = False) -> dict[str, float]:
    """Median, min and max ms of ``repeat`` calls; unless ``cached``, the bootstrap's
    cache is emptied before each, so its computation is counted every time."""
    from research import stats

    times = []
    for _ in range(repeat):
        if not cached:
            stats.forget()
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
    }


def _comparison(config: Config, items: int, repeat: int) -> dict[str, Any]:
    from parley import db
    from research.compare import compare
    from research.sample_runs import seed_runs

    with tempfile.TemporaryDirectory(prefix="parley-bench-compare-") as name:
        store = dataclasses.replace(
            config.store, database_url=f"sqlite:///{name}/bench.db", data_dir=f"{name}/data"
        )
        config = dataclasses.replace(config, store=store)
        with research_store(config):
            begin = time.perf_counter()
            seeded = seed_runs(items)
            seed_s = time.perf_counter() - begin
            begin = time.perf_counter()
            result = compare(seeded.runs, item_limit=PAGE_ROWS)
            first_ms = (time.perf_counter() - begin) * 1000.0
            page = _timed(lambda: compare(seeded.runs, item_limit=PAGE_ROWS), repeat)
            cached = _timed(lambda: compare(seeded.runs, item_limit=PAGE_ROWS), repeat, cached=True)
            tagged = _timed(
                lambda: compare(seeded.runs, tag="lights", item_limit=PAGE_ROWS), repeat
            )
            every = _timed(lambda: compare(seeded.runs), max(1, repeat // 2))
            http = compare_page_times(config, seeded.runs, items, repeat)
        db.database.close()
    return {
        "items": items,
        "runs": len(seeded.runs),
        "annotations": seeded.annotations,
        "preferences": seeded.preferences,
        "seed_s": round(seed_s, 1),
        "paired_metrics": len(result["paired"]),
        "first_ms": round(first_ms, 1),
        "page_100_rows": page,
        "page_100_rows_again": cached,
        "page_100_rows_one_tag": tagged,
        "every_row": every,
        "admin_page_http": http,
        "target_ms": TARGET_MS,
        "meets_target": http["page"]["median_ms"] < TARGET_MS,
    }


def run_bench_replay(args: argparse.Namespace, config: Config) -> int:
    require_extra()
    if not args.verbose:  # the headless edge's per-turn lines
        logging.getLogger("edge").setLevel(logging.WARNING)
    throughput = None
    if not args.compare_only:
        throughput = asyncio.run(_throughput(config, args.items, args.concurrency))
    comparison = _comparison(config, args.compare_items, args.repeat)
    result = {
        "benchmark": "replay",
        "replay": throughput,
        "compare": comparison,
        "machine": machine(),
    }
    ok = "meets" if comparison["meets_target"] else "MISSES"
    replayed = (
        ""
        if throughput is None
        else f"replay: {throughput['items_per_minute']} items/min ({throughput['done']} done, "
        f"{throughput['failed']} failed, {args.concurrency} streams, fast pace, instant "
        "engines); "
    )
    report(
        result,
        args,
        f"{replayed}compare {comparison['items']} items x {comparison['runs']} runs: "
        f"{comparison['page_100_rows']['median_ms']} ms in-process, the admin page over HTTP "
        f"{comparison['admin_page_http']['page']['median_ms']} ms; {ok} the target "
        f"(< {TARGET_MS:.0f} ms)",
    )
    return 0
