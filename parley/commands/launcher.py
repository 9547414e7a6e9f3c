"""Start the server and the local workers of some pipelines as processes, and wait
until every one of them answers its health check.

Processes already listening (e.g. a `parley up` in another terminal) are reused, not
started twice. Each started process logs to <home>/logs/<name>.log.

What was started is stopped by ``LocalStack.stop`` (callers call it in ``finally``) on
Ctrl-C and on SIGTERM alike (``parley.signals.sigterm_as_interrupt``, held from
``start`` to ``stop``); on Linux the children also get SIGTERM if this process is
killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from parley import rpc
from parley.config import Config, WorkersConfig
from parley.config_values import join_address
from parley.errors import ParleyError
from parley.security import dial_worker
from parley.signals import die_with_parent, sigterm_as_interrupt

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}


def is_loopback(address: str) -> bool:
    return address.rsplit(":", 1)[0] in LOOPBACK_HOSTS


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    address: str
    args: tuple[str, ...]  # after `python -m parley`
    # A worker's pool security: its health is checked over the pool's TLS (health
    # checks need no token). None: the server or the admin.
    security: WorkersConfig | None = None


def stack_specs(
    config: Config,
    pipelines: Iterable[str],
    processes: int | None = None,
    *,
    insecure: bool = False,
) -> list[ProcessSpec]:
    """The server (``processes`` server processes; None: the config's default) plus one
    worker per loopback address of each local pool used; with ``insecure`` each is
    started with --insecure. Workers take their token and TLS from the pool (the same
    config file and environment are passed on)."""
    flag = ("--insecure",) if insecure else ()
    server = (
        ("server", *flag) if processes is None else ("server", *flag, "--processes", str(processes))
    )
    specs = [ProcessSpec("server", join_address(config.server.host, config.server.port), server)]
    seen: set[str] = set()
    for name in pipelines:
        pipeline = config.pipeline(name)
        for stage in pipeline.stages.values():
            pool = config.pool(stage.pool)
            if not pool.local or pool.name in seen:
                continue
            seen.add(pool.name)
            for i, address in enumerate(a for a in pool.addresses if is_loopback(a)):
                specs.append(
                    ProcessSpec(
                        f"{pool.name}-{i}" if i else pool.name,
                        address,
                        ("worker", "--pool", pool.name, "--listen", address, *flag),
                        pool.security,
                    )
                )
    return specs


async def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class LocalStack:
    def __init__(
        self,
        config: Config,
        pipelines: Iterable[str],
        config_path: str | None = None,
        env: Mapping[str, str] | None = None,
        processes: int | None = None,
        *,
        insecure: bool = False,
    ) -> None:
        self.config = config
        self.specs = stack_specs(config, pipelines, processes, insecure=insecure)
        self.config_path = config_path
        self.env = dict(env or {})  # extra environment for the started processes
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = config.home / "logs"
        self._restore_sigterm: Callable[[], None] | None = None

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PARLEY_HOME=str(self.config.home), **self.env)
        if self.config_path:
            env["PARLEY_CONFIG"] = str(Path(self.config_path).resolve())
        log = (self.log_dir / f"{spec.name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "parley", *spec.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop them
            preexec_fn=die_with_parent(),  # and if we are killed, they stop too
        )

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def healthy(self, spec: ProcessSpec) -> bool:
        """Whether the process for ``spec`` answers its health check (its TLS and token)."""
        if spec.security is not None:
            channel = dial_worker(spec.address, spec.security)
        elif spec.address == self.server_address and self.config.server.tls_cert:
            return await _port_open(spec.address)  # a TLS server: its CA is not ours to know
        else:
            channel = rpc.dial(spec.address)
        async with channel:
            return await rpc.check_health(channel, timeout=0.5)

    @property
    def server_address(self) -> str:
        return join_address(self.config.server.host, self.config.server.port)

    async def _wait(self, spec: ProcessSpec, timeout: float) -> None:
        process = self.started.get(spec.name)
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.healthy(spec):
            if process is not None and process.poll() is not None:
                log = self.log_dir / f"{spec.name}.log"
                raise ParleyError(
                    f"{spec.name} exited with code {process.returncode}; its log ({log}) "
                    f"ends with:\n{self._log_tail(spec.name)}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise ParleyError(
                    f"{spec.name} on {spec.address} not healthy after {timeout:.0f} s"
                )
            await asyncio.sleep(0.2)

    async def start(self, timeout: float = 180.0) -> list[str]:
        """Start what is not already running; return the names started. From here until
        ``stop``, SIGTERM interrupts this process as Ctrl-C does, so the caller's
        ``finally: stack.stop()`` runs."""
        if self._restore_sigterm is None:
            self._restore_sigterm = sigterm_as_interrupt()
        running = await asyncio.gather(*(self.healthy(s) for s in self.specs))
        for spec, up in zip(self.specs, running, strict=True):
            if not up:
                self.started[spec.name] = self._spawn(spec)
        try:
            await asyncio.gather(*(self._wait(s, timeout) for s in self.specs))
        except BaseException:
            self.stop()
            raise
        return list(self.started)

    def stop(self, timeout: float = 10.0) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.terminate()
        for process in self.started.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(2)
        self.started.clear()
        if self._restore_sigterm is not None:
            self._restore_sigterm()
            self._restore_sigterm = None
