"""Server and worker processes that the harness starts, breaks and restarts.

:class:`ServerProcess` runs the real server (:mod:`parley.chaos.probe`) on a fixed
port with its own home, database and data directory; its worker pools point at
addresses the caller chose. With ``tmpfs_kb`` the data directory is a tmpfs of that
size, mounted in a private mount namespace (``unshare --user --map-root-user
--mount``, no privileges needed where the kernel allows user namespaces), so a full
disk and a read-only data directory can be produced for real. :class:`WorkerProcess`
runs ``parley worker STAGE --engine instant``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from parley import rpc

# Runs inside the private mount namespace: mount the tmpfs, start the server, remount
# read-only on SIGUSR2, pass SIGTERM on, and leave the server's pid for the probe.
_TMPFS_SCRIPT = r"""
data="$1"; size="$2"; pidfile="$3"; shift 3
mkdir -p "$data" && mount -t tmpfs -o "size=${size}k" tmpfs "$data" || {
  echo "chaos: cannot mount a tmpfs on $data" >&2; exit 97; }
"$@" &
child=$!
echo $child > "$pidfile"
trap 'mount -o remount,ro "$data" && echo "chaos: $data is read-only now" >&2' USR2
trap 'kill -TERM $child' TERM INT
while kill -0 $child 2>/dev/null; do wait $child; done
"""


def free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def tmpfs_unavailable() -> str:
    """Why a private tmpfs cannot be mounted here ("" when it can)."""
    if not shutil.which("unshare"):
        return "the unshare command is missing (util-linux)"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        return f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"
    return ""


def _toml(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | bool) else repr(value)


def write_config(
    path: Path,
    workers: Mapping[str, str],
    settings: Mapping[str, Mapping[str, Any]],
    pipeline: str = "chaos",
) -> None:
    """A config file: ``pipeline`` on the instant engines at ``workers`` (stage ->
    address), plus ``settings`` (section -> key -> value)."""
    sections = {name: dict(values) for name, values in settings.items()}
    sections.setdefault("server", {})["default_pipeline"] = pipeline
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    for stage, address in workers.items():
        lines.append(
            f'[pools.{pipeline}-{stage}]\nstage = "{stage}"\nengine = "instant"\n'
            f'addresses = ["{address}"]\nlocal = false'
        )
    lines.append(f"[pipelines.{pipeline}]")
    lines += [f'{stage} = {{ pool = "{pipeline}-{stage}" }}' for stage in workers]
    path.write_text("\n".join(lines) + "\n")


class ServerProcess:
    """The server on a fixed free port, in ``home``; kill, restart and probe it."""

    def __init__(
        self,
        home: Path,
        workers: Mapping[str, str],
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        tmpfs_kb: int = 0,
    ) -> None:
        self.home = home
        self.address = free_address()
        self.port = self.address.rsplit(":", 1)[1]
        self.config = home / "parley.toml"
        self.data_dir = home / "data"
        self.database_url = f"sqlite:///{home / 'parley.db'}"
        self.tmpfs_kb = tmpfs_kb
        home.mkdir(parents=True, exist_ok=True)
        write_config(self.config, workers, settings or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.home / f"server-{self.starts}.log"

    def logs(self) -> str:
        """Everything every start of the server has logged."""
        return "".join(
            (self.home / f"server-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
            if (self.home / f"server-{n}.log").exists()
        )

    def _command(self) -> list[str]:
        probe = [sys.executable, "-m", "parley.chaos.probe", str(self.home / "probe.json")]
        if not self.tmpfs_kb:
            return probe
        args = [str(self.data_dir), str(self.tmpfs_kb), str(self.home / "server.pid")]
        return ["unshare", "-rm", "sh", "-c", _TMPFS_SCRIPT, "chaos-server", *args, *probe]

    async def start(self, timeout: float = 30.0) -> None:
        self.process = self._spawn()
        try:
            await rpc.wait_healthy(self.address, timeout=timeout)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"the server did not start:\n{self.logs()[-3000:]}") from None

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {
            "PARLEY_HOME": str(self.home),
            "PARLEY_CONFIG": str(self.config),
            "PARLEY_SERVER_PORT": self.port,
            "PARLEY_SERVER_PROCESSES": "1",  # one process, killed as if it crashed
            "PARLEY_STORE_DATA_DIR": str(self.data_dir),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        self.starts += 1
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                self._command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: a kill takes the wrapper too
            )

    @property
    def pid(self) -> int:
        """The server's own pid (inside the tmpfs wrapper, if any)."""
        assert self.process is not None
        if self.tmpfs_kb:
            return int((self.home / "server.pid").read_text())
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no goodbye, as if it crashed or lost power."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def make_read_only(self) -> None:
        """Remount the tmpfs data directory read-only (needs ``tmpfs_kb``)."""
        assert self.process is not None and self.tmpfs_kb
        os.kill(self.process.pid, signal.SIGUSR2)

    async def stats(self, timeout: float = 5.0) -> dict[str, int]:
        """Tasks, threads, fds and RSS (kB) of the running server."""
        path = self.home / "probe.json"
        path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(int(timeout / 0.02)):
            await asyncio.sleep(0.02)
            if path.exists():
                return dict(json.loads(path.read_text()))
        raise TimeoutError("the server's probe did not answer")

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait (a clean stop); SIGKILL if it does not."""
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        assert self.process is not None
        for _ in range(int(timeout * 20)):
            if self.process.poll() is not None:
                return
            await asyncio.sleep(0.05)
        self.kill()


class WorkerProcess:
    """``parley worker STAGE --engine instant`` on ``address``."""

    def __init__(self, home: Path, stage: str, address: str | None = None) -> None:
        self.home, self.stage = home, stage
        self.address = address or free_address()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self, timeout: float = 30.0) -> None:
        self.process = self._spawn()
        await rpc.wait_healthy(self.address, timeout=timeout)

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        command = [sys.executable, "-m", "parley", "worker", self.stage, "--engine", "instant"]
        command += ["--listen", self.address]
        env = {"PARLEY_HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env["OTEL_SDK_DISABLED"] = "true"
        with (self.home / f"worker-{self.stage}-{self.starts}.log").open("wb") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def workers_running(home: Path) -> Iterator[dict[str, WorkerProcess]]:
    """Instant workers for stt, llm and tts (started by the caller: ``await w.start()``)."""
    home.mkdir(parents=True, exist_ok=True)
    workers = {stage: WorkerProcess(home, stage) for stage in ("stt", "llm", "tts")}
    try:
        yield workers
    finally:
        for worker in workers.values():
            worker.signal(signal.SIGCONT)
            worker.kill()
