"""A command that starts a local stack (here `parley bench load`) leaves no process
behind when it is stopped by SIGTERM (``timeout``, systemd) or killed outright."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest


def _stack_children(parent: psutil.Process) -> list[psutil.Process]:
    """The started server and workers, once all four are running (or [] after 90 s)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        lines = [" ".join(c.cmdline()) for c in children if c.is_running()]
        if sum(" worker " in line for line in lines) >= 3 and any(
            " server" in line for line in lines
        ):
            return children
        if parent.status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.3)
    return []


def _alive(processes: list[psutil.Process]) -> list[str]:
    out = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{process.pid} {' '.join(process.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_bench_leaves_no_processes(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "PARLEY_HOME": str(tmp_path)}
    env.pop("PARLEY_CONFIG", None)
    bench = subprocess.Popen(
        [sys.executable, "-m", "parley", "bench", "load", "--streams", "1", "--seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        children = _stack_children(psutil.Process(bench.pid))
        assert children, "the bench did not start its server and workers"
        time.sleep(1.0)  # streaming now
        bench.send_signal(sig)
        out, _ = bench.communicate(timeout=60)
        assert bench.returncode == (128 + signal.SIGTERM if sig == signal.SIGTERM else -sig)
        if sig == signal.SIGTERM:
            assert b"Traceback" not in out, out.decode()
        deadline = time.monotonic() + 30  # killed: Linux tells the children to stop
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(children) == []
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for child in children:  # a failed run must not leave them behind either
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
