"""`python -m parley.chaos.probe STATS_FILE`: the Parley server as the harness runs it.

The same server as ``parley server`` (``server.app.start_server``, config from
``$PARLEY_CONFIG`` and the environment), plus a probe: on SIGUSR1 it writes its asyncio
tasks, threads, open file descriptors and resident memory to STATS_FILE as JSON
(after a garbage collection), so leaks can be measured from outside.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path


def process_stats() -> dict[str, int]:
    """This process's asyncio tasks, threads, open descriptors and RSS (kB)."""
    gc.collect()
    rss_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return {
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kb": rss_kb,
    }


async def _main(stats_file: Path) -> None:
    from parley.config import load_config
    from server.app import start_server

    running = await start_server(load_config())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def dump() -> None:
        temp = stats_file.with_suffix(".tmp")
        temp.write_text(json.dumps(process_stats()))
        temp.replace(stats_file)

    loop.add_signal_handler(signal.SIGUSR1, dump)
    print("probe ready", flush=True)
    await stop.wait()
    await running.stop()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_main(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
