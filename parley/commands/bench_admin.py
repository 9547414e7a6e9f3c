"""`parley bench admin`: how fast the admin's heavy pages are on a big store.

Seeds N turns (with conversations, annotations by four annotators, multi-turn groups and
six stored spans per turn) into a scratch SQLite database, logs in through the real
login form and times each page through the Flask test client (the whole request:
auth, queries, numpy, templates; no network). The first visits to the two benchmark
pages are timed apart: they build the admin's caches (admin/latency_cache.py,
admin/score_cache.py) once. Then every page is requested --repeat times after one
warm-up; the figure reported is the median.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from parley.commands.bench import report
from parley.config import Config

PAGES = {
    "latency_summary": "/latency/",
    "accuracy_summary": "/accuracy/",
    "queue": "/queue/",
    "queue_one_pipeline": "/queue/?pipeline=local",
    "turn_list": "/turns/",
    "turn_list_search": "/turns/?q=lamp&annotated=no",
}
TARGET_MS = 500.0


def _timed(client: Any, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - start) * 1000.0
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return elapsed


def bench_admin(config: Config, turns: int, repeat: int) -> dict[str, Any]:
    from admin.app import create_app
    from admin.sample_data import PASSWORD, seed
    from parley import db

    with tempfile.TemporaryDirectory(prefix="parley-bench-admin-") as scratch:
        store = dataclasses.replace(
            config.store, database_url=f"sqlite:///{scratch}/bench.db", data_dir=f"{scratch}/data"
        )
        config = dataclasses.replace(config, home=Path(scratch), store=store)
        app = create_app(config, secret_key=os.urandom(24).hex())
        started = time.perf_counter()
        with db.database.connection_context():
            seeded = seed(turns, spans=True, annotators=4)
        seed_s = time.perf_counter() - started
        client = app.test_client()
        token = re.search(
            r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text
        )
        assert token is not None
        client.post(
            "/login",
            data={"name": seeded.users[0], "password": PASSWORD, "csrf_token": token.group(1)},
        )
        cold = {  # the first visits build the caches
            f"{name}_first_ms": round(_timed(client, PAGES[name]), 1)
            for name in ("latency_summary", "accuracy_summary")
        }
        pages: dict[str, dict[str, float]] = {}
        for name, url in PAGES.items():
            _timed(client, url)  # warm-up
            times = [_timed(client, url) for _ in range(repeat)]
            pages[name] = {
                "median_ms": round(statistics.median(times), 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
            }
        size = Path(scratch, "bench.db").stat().st_size
        db.database.close()
    heavy = ("latency_summary", "accuracy_summary", "queue")
    return {
        "benchmark": "admin",
        "turns": seeded.turns,
        "annotations": seeded.annotations,
        "groups": seeded.groups,
        "spans": seeded.spans,
        "database_mb": round(size / 1e6, 1),
        "seed_s": round(seed_s, 1),
        "repeat": repeat,
        **cold,
        "pages": pages,
        "target_ms": TARGET_MS,
        "meets_target": all(pages[p]["median_ms"] < TARGET_MS for p in heavy),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def run_bench_admin(args: argparse.Namespace, config: Config) -> int:
    from parley.commands.admin import require_extra

    require_extra()
    result = bench_admin(config, args.turns, args.repeat)
    figures = ", ".join(f"{k} {v['median_ms']} ms" for k, v in result["pages"].items())
    ok = "meets" if result["meets_target"] else "MISSES"
    target = f"{ok} the target (< {TARGET_MS:.0f} ms)"
    report(result, args, f"{result['turns']} turns: {figures}; {target}")
    return 0
