"""CPU and memory of a running server and its workers, found by the ports they listen
on (Linux /proc; processes on this machine that this user may read).

A server started with several processes sharing its port has one listening socket
per process, so each is found. The server's VAD scoring thread is found by its name
(server/vad_scheduler.py), so its CPU time per window can be told apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.commands.bench import memory_mb, process_cpu_seconds
from parley.commands.launcher import is_loopback
from parley.config import Config

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_pids(port: int) -> list[int]:
    """Processes with a TCP socket listening on ``port`` (any local address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
            if any(os.readlink(fd.path) in inodes for fd in fds):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return sorted(pids)


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU time of the threads of ``pid``, summed by thread name (the
    main thread is "main")."""
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        totals[name] = totals.get(name, 0.0) + seconds
    return totals


@dataclass
class Sample:
    cpu_s: dict[int, float]  # pid -> CPU seconds
    threads_s: dict[int, dict[str, float]]  # server pid -> thread name -> CPU seconds


@dataclass
class Probe:
    """The processes whose resources a load benchmark reports, by role."""

    server: list[int] = field(default_factory=list)
    workers: dict[str, list[int]] = field(default_factory=dict)  # address -> pids

    @classmethod
    def find(cls, address: str, config: Config, pipeline: str) -> Probe:
        """The server at ``address`` and the loopback workers of ``pipeline``'s pools."""
        if not is_loopback(address):
            return cls()
        probe = cls(server=listening_pids(int(address.rsplit(":", 1)[1])))
        spec = config.pipeline(pipeline)
        for stage in ("stt", "llm", "tts"):
            for worker in config.pool(spec.stage(stage).pool).addresses:
                if is_loopback(worker):
                    probe.workers[worker] = listening_pids(int(worker.rsplit(":", 1)[1]))
        return probe

    @property
    def worker_pids(self) -> list[int]:
        return sorted({pid for pids in self.workers.values() for pid in pids} - {*self.server})

    def describe(self) -> dict[str, Any]:
        return {"server": self.server, "workers": self.workers}

    def sample(self) -> Sample:
        cpu = {pid: _cpu(pid) for pid in [*self.server, *self.worker_pids]}
        return Sample(
            {pid: seconds for pid, seconds in cpu.items() if seconds is not None},
            {pid: threads for pid in self.server if (threads := _threads(pid)) is not None},
        )

    def figures(
        self, before: Sample, after: Sample, wall_s: float, streams: int, windows: float
    ) -> dict[str, Any]:
        """CPU over the measured window (:meth:`cpu_figures`) and memory now."""
        if not self.server:
            return {"cpu": None, "note": "the server's processes are not on this machine"}
        memory = {pid: _memory(pid) for pid in [*self.server, *self.worker_pids]}

        def total(pids: list[int], key: str) -> float:
            return round(sum(memory[p].get(key, 0.0) for p in pids), 1)

        return {
            **self.cpu_figures(before, after, wall_s, streams, windows),
            "rss_mb": {
                "server": total(self.server, "VmRSS"),
                "server_peak": total(self.server, "VmHWM"),
                "workers": total(self.worker_pids, "VmRSS"),
            },
        }

    def cpu_figures(
        self, before: Sample, after: Sample, wall_s: float, streams: int, windows: float
    ) -> dict[str, Any]:
        """Percent of one core over ``wall_s``; the VAD thread's CPU per window, given
        the ``windows`` the streams sent meanwhile."""

        def percent(pids: list[int]) -> float:  # a process gone meanwhile counts nothing
            both = [p for p in pids if p in before.cpu_s and p in after.cpu_s]
            return 100 * sum(after.cpu_s[p] - before.cpu_s[p] for p in both) / wall_s

        from server.vad_scheduler import THREAD_NAME

        server, workers = percent(self.server), percent(self.worker_pids)
        threads: dict[str, float] = {}  # the server processes' threads, by name
        for pid, now in after.threads_s.items():
            for name, seconds in now.items():
                used = seconds - before.threads_s.get(pid, {}).get(name, 0.0)
                threads[name] = threads.get(name, 0.0) + 100 * used / wall_s
        vad = threads.get(THREAD_NAME, 0.0) * wall_s / 100
        return {
            "cpu": {
                "server_percent": round(server, 2),
                "workers_percent": round(workers, 2),
                "vad_thread_percent": round(100 * vad / wall_s, 2),
                "server_threads_percent": {
                    name: round(pct, 2)
                    for name, pct in sorted(threads.items(), key=lambda kv: -kv[1])
                    if pct >= 0.5
                },
            },
            # server + workers, percent of one core per live stream
            "cpu_percent_per_stream": round((server + workers) / streams, 3),
            "vad_cpu_ms_per_window": round(1000 * vad / windows, 4) if windows else None,
        }


def _memory(pid: int) -> dict[str, float]:
    try:
        return memory_mb(pid)
    except OSError:  # the process is gone
        return {}


def _cpu(pid: int) -> float | None:
    try:
        return process_cpu_seconds(pid)
    except OSError:  # the process is gone
        return None


def _threads(pid: int) -> dict[str, float] | None:
    try:
        return thread_cpu_seconds(pid)
    except OSError:
        return None
