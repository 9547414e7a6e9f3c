"""`parley server --processes N`: N server processes sharing the Converse port, supervised.

Each process is a whole, independent server (its own VAD, store connection, span
export and worker channels) listening on the same host:port with SO_REUSEPORT: the
kernel hands each new connection (one edge's stream) to one of them. Sessions share
nothing but the database, so nothing else is shared.

The supervisor (this module, a small process of its own):

- starts the processes and waits until each says it is listening (a pipe per process).
  One that exits before all of them are up stops them all and fails the command: a bad
  config, a port taken by another program, or a database that cannot be opened is one
  clear error, not a restart loop;
- restarts a process that dies later (the edges it served reconnect and land on the
  others meanwhile), after a back-off that grows while processes keep dying young;
- on SIGINT or SIGTERM stops them all (SIGTERM, then SIGKILL after ``grace_s``). The
  processes run in their own session, so a Ctrl-C in a terminal reaches the supervisor
  only, and on Linux they are told to stop if the supervisor itself is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from parley.arguments import MAX_PROCESSES
from parley.signals import die_with_parent

log = logging.getLogger(__name__)

READY = b"ready\n"
BACKOFF_S = (1.0, 30.0)  # first and longest wait before a restart
STABLE_S = 60.0  # a process that lived this long resets the back-off


def default_processes() -> int:
    """The number of CPU cores this process may run on, at most MAX_PROCESSES."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(cores, MAX_PROCESSES)


def free_port(host: str) -> int:
    """A port nothing listens on at ``host`` now (for ``--listen HOST:0``)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


def notify_ready(fd: int) -> None:
    """Tell the supervisor this process listens. The pipe stays open: its end of file
    tells the supervisor that the process is gone."""
    os.write(fd, READY)


@dataclass
class Child:
    """One server process of the supervisor's ``processes`` slots."""

    slot: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


class Supervisor:
    """Runs ``command + ["--ready-fd", FD]`` ``processes`` times and keeps it running."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        grace_s: float = 8.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.command = list(command)
        self.processes = processes
        self.grace_s = grace_s
        self.env = env
        self.children: dict[int, Child] = {}  # slot -> its running process
        self.restarts = 0
        self._selector = selectors.DefaultSelector()
        self._backoff = dict.fromkeys(range(processes), BACKOFF_S[0])
        self._due: dict[int, float] = {}  # slot -> when to restart it
        self._all_up = False
        self._failed_status = 1
        self._stop_signal: int | None = None
        self._preexec = die_with_parent()

    def _spawn(self, slot: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            process = subprocess.Popen(
                [*self.command, "--ready-fd", str(write_fd)],
                pass_fds=(write_fd,),
                env=self.env,
                start_new_session=True,
                preexec_fn=self._preexec,  # the supervisor has no other threads
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        child = Child(slot, process, read_fd)
        self.children[slot] = child
        self._selector.register(read_fd, selectors.EVENT_READ, child)
        log.info("server process %d/%d started (pid %d)", slot + 1, self.processes, process.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def run(self) -> int:
        """Supervise until SIGINT/SIGTERM (returns 0) or a failed start-up (returns the
        failed process's exit status: 2 for a refused configuration, as one process would;
        1 if it died of a signal)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(self.processes):
                if self._stop_signal is not None:  # stopped while starting them
                    break
                self._spawn(slot)
            while self._stop_signal is None:
                if not self._step():
                    return self._failed_status
            log.info("stopping %d server process(es)", len(self.children))
            return 0
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _step(self) -> bool:
        """Wait a moment for readiness and exits; False once start-up has failed."""
        for key, _ in self._selector.select(timeout=0.25):
            child: Child = key.data
            data = os.read(child.ready_fd, 64)
            if data:
                self._on_ready(child)
            elif not self._on_exit(child):
                return False
        now = time.monotonic()
        for slot, due in list(self._due.items()):
            if now >= due and self._stop_signal is None:
                del self._due[slot]
                self.restarts += 1
                self._spawn(slot)
        return True

    def _on_ready(self, child: Child) -> None:
        child.ready = True
        log.info("server process %d (pid %d) is listening", child.slot + 1, child.process.pid)
        children = self.children.values()
        if not self._all_up and len(children) == self.processes and all(c.ready for c in children):
            self._all_up = True
            log.info("all %d server processes are listening", self.processes)

    def _on_exit(self, child: Child) -> bool:
        self._selector.unregister(child.ready_fd)
        os.close(child.ready_fd)
        code = child.process.wait()
        del self.children[child.slot]
        if self._stop_signal is not None:
            return True
        if not self._all_up:
            self._failed_status = code if code > 0 else 1
            log.error(
                "server process %d (pid %d) exited with code %d while starting; stopping"
                " (its error is in the log above)",
                child.slot + 1,
                child.process.pid,
                code,
            )
            return False
        lived = time.monotonic() - child.started
        wait = BACKOFF_S[0] if lived >= STABLE_S else self._backoff[child.slot]
        self._backoff[child.slot] = min(wait * 2, BACKOFF_S[1])
        self._due[child.slot] = time.monotonic() + wait
        log.warning(
            "server process %d (pid %d) exited with code %d after %.0f s; restarting in %.0f s",
            child.slot + 1,
            child.process.pid,
            code,
            lived,
            wait,
        )
        return True

    def _stop_all(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in self.children.values():
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("server process pid %d did not stop; killing it", child.process.pid)
                child.process.kill()
                child.process.wait()
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(child.ready_fd)
            with contextlib.suppress(OSError):
                os.close(child.ready_fd)
        self.children.clear()
        self._selector.close()
