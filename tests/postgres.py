"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temporary directory as
an unprivileged account (PostgreSQL refuses to run as root), listening on one address
only, with durability off (a test database is never worth an fsync).

Used by tests/conftest.py (one cluster per test session, a fresh database per test) and
by the multi-host test, which runs the server inside a network namespace (``wrap``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

SUPERUSER = "parley"
# Settings of a cluster whose data may be lost at any moment.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_directories": "''",  # TCP on the given address only
    "log_min_messages": "warning",
}


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: $PARLEY_TEST_PG_BINDIR, else the newest
    Debian /usr/lib/postgresql/<version>/bin, else the PATH."""
    if os.environ.get("PARLEY_TEST_PG_BINDIR"):
        return Path(os.environ["PARLEY_TEST_PG_BINDIR"])
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def unprivileged_account() -> str | None:
    """The account the server runs as when we are root: Debian's ``postgres``, else
    ``nobody``. None when we are not root (the server then runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and there is no postgres or nobody account")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL server on ``host``:``port`` (port None: a free one), its data in a
    new temporary directory. ``wrap`` prefixes every command (e.g. ``ip netns exec NS``);
    ``clients`` (a CIDR network) may connect too, beside the loopback addresses.
    """

    def __init__(
        self,
        bindir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        wrap: Sequence[str] = (),
        clients: str = "",
    ) -> None:
        self.bindir = bindir
        self.host = host
        self.port = port or free_port(host)
        self.wrap = list(wrap)
        self.clients = clients
        self.account = unprivileged_account()
        self.directory = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    def _as_owner(self, *args: str) -> list[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.account is not None:
            command = ["runuser", "-u", self.account, "--", *command]
        return [*self.wrap, *command]

    def start(self) -> Cluster:
        if self.account is not None:
            entry = pwd.getpwnam(self.account)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._as_owner(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '{self.host}'\nport = {self.port}\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SETTINGS.items())
        if self.clients:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.clients} trust\n")
        done = subprocess.run(
            self._as_owner("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start"),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}{log}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def createdb(self, name: str) -> str:
        """Create database ``name`` with the cluster's own client; returns its URL."""
        done = subprocess.run(
            [*self.wrap, str(self.bindir / "createdb"), "-h", self.host, "-p", str(self.port),
             "-U", SUPERUSER, name],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {done.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                self._as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
            )
        shutil.rmtree(self.directory, ignore_errors=True)
