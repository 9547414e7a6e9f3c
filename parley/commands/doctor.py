"""`parley doctor`: is this machine ready to run Parley, and what to do where it is not.

Checks Python, the installed extras, the sound devices, each pipeline's engines and
models (or, for OpenAI engines, a key or a base URL; the end-of-turn model of a
smart_turn pipeline is loaded and its input checked as the server does), the ports
`parley up` needs, the database and the admin accounts (read only: it never creates or
upgrades the store). Every problem comes with what to do. The exit status is 1 when
something blocks the default pipeline (`parley up` / `parley demo` would fail), else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import importlib.util
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parley.commands.launcher import LocalStack, ProcessSpec, is_loopback
from parley.commands.models import missing_advice, missing_models
from parley.config import TURN_MODEL_FIX, Config, PoolConfig
from parley.config_values import join_address
from parley.errors import ParleyError

# extra -> modules it provides (find_spec: nothing is imported)
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("onnxruntime", "silero_vad"),
    "stt": ("faster_whisper",),
    "llm": ("llama_cpp",),
    "tts": ("piper",),
    "tiny": ("onnx", "tokenizers"),
    "admin": ("flask_admin", "flask_wtf", "jiwer", "waitress"),
    "edge": ("sounddevice", "soundfile"),
    "models": ("tqdm",),
    "postgres": ("psycopg2",),
}
# engine -> (module it needs, extra that installs it)
ENGINES: dict[str, tuple[str, str]] = {
    "faster_whisper": ("faster_whisper", "stt"),
    "llama_cpp": ("llama_cpp", "llm"),
    "piper": ("piper", "tts"),
    "openai": ("openai", "llm"),
    "onnx_audio": ("onnxruntime", "analyse"),
    "index": ("sqlite_vec", "rag"),
}
STATUS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@dataclass
class Check:
    area: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
    blocks: bool = False  # blocks the default pipeline

    def lines(self) -> list[str]:
        out = [f"  {STATUS[self.status]}  {self.area:18s} {self.detail}"]
        if self.fix:
            out.append(f"        {'':18s} -> {self.fix}")
        return out


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_python() -> Check:
    """Which Python runs Parley (3.11 or newer: older ones cannot even import it, and
    scripts/bootstrap.sh refuses them)."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", "ok", f"{version} ({sys.executable})")


def _default_extras(config: Config) -> set[str]:
    pipeline = config.pipeline(config.server.default_pipeline)
    needed = {"server"}
    if urlsplit(config.database_url).scheme.startswith("postgres"):
        needed.add("postgres")
    for stage, stage_config in pipeline.stages.items():
        pool = config.pool(stage_config.pool)
        if pool.local and pool.engine in ENGINES:
            needed.add(ENGINES[pool.engine][1] if pool.engine != "openai" else stage)
    if missing_models(config, pipeline.name):
        needed.add("tiny")  # tiny models are built on the spot, which needs these
    return needed


def check_extras(config: Config) -> list[Check]:
    needed = _default_extras(config)
    out = []
    for extra, modules in EXTRAS.items():
        absent = _missing(modules)
        if not absent:
            out.append(Check(f"extra [{extra}]", "ok", "installed"))
            continue
        blocks = extra in needed
        out.append(
            Check(
                f"extra [{extra}]",
                "fail" if blocks else "warn",
                f"missing {', '.join(absent)}"
                + (" (the default pipeline needs it)" if blocks else ""),
                f"pip install 'parley[{extra}]' (scripts/bootstrap.sh installs every extra)",
                blocks,
            )
        )
    return out


def check_sound() -> Check:
    try:
        import sounddevice
    except ImportError:
        return Check(
            "sound devices",
            "warn",
            "sounddevice is not installed (only the edge agent needs it)",
            "pip install 'parley[edge]'",
        )
    except OSError as exc:  # PortAudio itself is missing
        return Check("sound devices", "warn", str(exc), "apt-get install libportaudio2")
    devices = sounddevice.query_devices()
    inputs = sum(1 for d in devices if d["max_input_channels"] > 0)
    outputs = sum(1 for d in devices if d["max_output_channels"] > 0)
    if inputs and outputs:
        return Check("sound devices", "ok", f"{inputs} input(s), {outputs} output(s)")
    return Check(
        "sound devices",
        "warn",
        f"{inputs} input(s), {outputs} output(s): no live microphone or speaker here",
        "fine for a server; the edge can stream a recording (parley edge --wav FILE --out "
        "OUT, or --mic-file); on a Pi: parley edge --list-devices",
    )


def _openai_ready(pool: PoolConfig) -> bool:
    options = pool.options
    return bool(
        os.environ.get("OPENAI_API_KEY")
        or os.environ.get("OPENAI_BASE_URL")
        or options.get("api_key")
        or options.get("base_url")
    )


@functools.cache
def turn_model_problem(path: Path) -> str | None:
    """What the server would say loading the end-of-turn model at ``path`` (the same
    load and input-shape check, server/smart_turn.py), or None when it loads."""
    try:
        from server.smart_turn import SmartTurn, SmartTurnError
    except ImportError as exc:  # numpy or the like: the server extra is missing
        return f"cannot check it ({exc}): pip install 'parley[server]'"
    try:
        SmartTurn(path)
    except SmartTurnError as exc:
        return exc.problem  # the fix is TURN_MODEL_FIX, given beside it
    except ParleyError as exc:
        return str(exc)
    return None


def check_pipeline(config: Config, name: str) -> Check:
    from workers.engines import engine_names

    default = name == config.server.default_pipeline
    area = f"pipeline {name}" + (" *" if default else "")
    pipeline = config.pipeline(name)
    problems, fixes = [], []
    for stage, stage_config in pipeline.stages.items():
        pool = config.pool(stage_config.pool)
        if pool.local and pool.engine not in engine_names(pool.stage):
            problems.append(
                f"{stage}: pool {pool.name} names an unknown {pool.stage} engine "
                f"{pool.engine!r} (known here: {', '.join(engine_names(pool.stage))})"
            )
            fixes.append(
                f"fix [pools.{pool.name}] engine, or install the package that adds it "
                "(a parley.engines entry point, docs/extending.md)"
            )
            continue
        if pool.engine == "openai" and not _openai_ready(pool):
            problems.append(f"{stage}: no OpenAI key or base URL")
            fixes.append(
                "set OPENAI_API_KEY, or OPENAI_BASE_URL (or the pool's options.base_url) "
                "for an OpenAI-compatible server"
            )
        module, extra = ENGINES.get(pool.engine, ("", ""))
        if module and _missing((module,)):
            problems.append(f"{stage}: engine {pool.engine} needs {module}")
            fixes.append(f"pip install 'parley[{extra}]'")
    turn = config.turn_for(name)
    turn_model = config.turn_model_path(turn)
    if turn.strategy == "smart_turn" and turn_model.exists():
        if problem := turn_model_problem(turn_model):
            problems.append(f"end-of-turn model: {problem}")
            fixes.append(TURN_MODEL_FIX)
    if (advice := missing_advice(config, name)) is not None:
        problems.append(advice[0])
        fixes.append(advice[1])
    elif missing_models(config, name) and not problems:  # the tiny ones only
        return Check(
            area,
            "ok",
            "tiny models not built yet: parley up / demo build them (seconds, offline)",
        )
    if not problems:
        return Check(area, "ok", "ready")
    return Check(
        area,
        "fail" if default else "warn",
        "; ".join(problems),
        "; ".join(dict.fromkeys(fixes)),
        default,
    )


def _bind_free(address: str) -> bool | None:
    """Whether a server could listen on ``address`` (None: not this machine's)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # only listeners clash
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            return None
    return True


def check_ports(config: Config) -> list[Check]:
    """The server's, the default pipeline's workers' and the admin's ports."""
    from parley.commands import admin

    stack = LocalStack(config, [config.server.default_pipeline])

    def parley_answers(spec: ProcessSpec) -> Callable[[], bool]:
        return lambda: asyncio.run(stack.healthy(spec))

    targets: list[tuple[str, str, Callable[[], bool]]] = [
        (spec.name, spec.address, parley_answers(spec))
        for spec in stack.specs
        if is_loopback(spec.address) or spec.name == "server"
    ]
    admin_address = join_address(config.admin.host, config.admin.port)
    url = admin.site_url(config.admin.host, config.admin.port) + "login"
    targets.append(("admin", admin_address, lambda: admin.http_up(url)))
    out = []
    for name, address, answers in targets:
        free = _bind_free(address)
        area = f"port {address.rpartition(':')[2]}"
        if free or free is None:
            out.append(Check(area, "ok", f"free for {name}" if free else f"{name}: {address}"))
        elif answers():
            out.append(Check(area, "ok", f"{name} already running there (parley up reuses it)"))
        else:
            blocks = name != "admin"
            out.append(
                Check(
                    area,
                    "fail" if blocks else "warn",
                    f"busy: another program listens where {name} should ({address})",
                    f"stop it, or move Parley's ports: base_port = N in parley.toml or "
                    f"PARLEY_BASE_PORT=N (now {config.base_port}; the server is base + 1, "
                    "workers base + 11.., the admin base + 30)",
                    blocks,
                )
            )
    return out


def check_store(config: Config) -> list[Check]:
    """The database and the admin accounts, read only: the doctor never creates or
    upgrades the store (a server or admin start does, and `parley db upgrade`)."""
    from parley import db
    from parley.commands.admin import CREATE_USER
    from parley.commands.db import read_store

    url = db.redact(config.database_url)
    unread = Check("admin accounts", "warn", "cannot read them (see database)")
    try:
        store = read_store(config.database_url)
    except db.MissingDriver as exc:
        fix = "pip install 'parley[postgres]'"
        return [Check("database", "fail", f"{url}: {exc}", fix, True), unread]
    except Exception as exc:  # ParleyError names the database; anything else may not
        return [
            Check(
                "database",
                "fail",
                str(exc) if isinstance(exc, ParleyError) else f"{url}: {exc}",
                "check [store] database_url (PARLEY_STORE_DATABASE_URL); PostgreSQL needs "
                "pip install 'parley[postgres]' and a reachable server",
                True,
            ),
            unread,
        ]
    if not store.status.exists:
        return [
            Check("database", "ok", f"{url}: not created yet (the first start creates it)"),
            Check("admin accounts", "warn", "none yet", f"after `parley up`: {CREATE_USER}"),
        ]
    if store.status.pending:
        steps = store.status.pending
        return [
            Check(
                "database",
                "warn",
                f"{url}: schema out of date ({len(steps)} pending step(s): {', '.join(steps)})",
                "parley db upgrade (the next server or admin start also applies them)",
            ),
            Check("admin accounts", "warn", "not counted until the schema is up to date"),
        ]
    database = Check("database", "ok", f"{url} ({store.turns} turns)")
    return [database, _accounts(store.accounts)]


def _accounts(count: int) -> Check:
    from parley.commands import admin

    if not admin.available():
        return Check("admin accounts", "warn", "the admin extra is missing", admin.EXTRA_HINT)
    if count == 0:
        return Check(
            "admin accounts",
            "warn",
            "none: nobody can log in to the admin site",
            f"{admin.CREATE_USER} (or parley admin seed-sample on a spare PARLEY_HOME)",
        )
    return Check("admin accounts", "ok", f"{count} active")


def diagnose(config: Config) -> list[Check]:
    checks = [check_python(), *check_extras(config), check_sound()]
    checks += [check_pipeline(config, name) for name in sorted(config.pipelines)]
    checks += [*check_ports(config), *check_store(config)]
    return checks


def run_doctor(args: argparse.Namespace, config: Config) -> int:
    checks = diagnose(config)
    blocked = [c for c in checks if c.blocks and c.status == "fail"]
    default = config.server.default_pipeline
    if args.json:
        result: dict[str, Any] = {
            "default_pipeline": default,
            "ready": not blocked,
            "checks": [asdict(c) for c in checks],
        }
        print(json.dumps(result, indent=2))
    else:
        print(f"parley doctor: home {config.home}, base_port {config.base_port}")
        for check in checks:
            print("\n".join(check.lines()))
        if blocked:
            areas = ", ".join(c.area for c in blocked)
            print(f"the default pipeline ({default}) cannot run yet: fix {areas} (above)")
        else:
            print(f"ready: `parley up` runs the default pipeline ({default}); * marks it")
    return 1 if blocked else 0
