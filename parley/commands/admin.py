"""`parley admin`: serve the annotation and benchmark site, manage its accounts; and the
admin process `parley up` starts next to the server and workers."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import threading
import time
import urllib.error
import urllib.request

from parley.commands.launcher import LocalStack, ProcessSpec
from parley.config import Config
from parley.config_values import join_address, parse_address
from parley.errors import ParleyError

log = logging.getLogger("parley.admin")
EXTRA_HINT = "the admin needs the [admin] extra: pip install 'parley[admin]'"
CREATE_USER = "parley admin create-user NAME --role admin"


def require_extra() -> None:
    try:
        import flask_admin  # noqa: F401
        import flask_limiter  # noqa: F401
        import flask_wtf  # noqa: F401
        import jiwer  # noqa: F401
    except ImportError as exc:
        raise ParleyError(f"{EXTRA_HINT} ({exc.name} is missing)") from None


def _listen(args: argparse.Namespace, config: Config) -> tuple[str, int]:
    if getattr(args, "listen", None):
        host, port = parse_address(args.listen, "--listen", any_port=True, empty_host=True)
        return host or config.admin.host, port
    return config.admin.host, config.admin.port


def serve(args: argparse.Namespace, config: Config) -> int:
    require_extra()
    from admin import latency_cache, score_cache
    from admin.app import create_app
    from admin.models import User
    from parley import db

    app = create_app(config)
    with db.database.connection_context():
        users = User.select().count()
    if not users:
        print(f"no accounts yet: create one with `{CREATE_USER}`")
    # Build the caches now rather than on the first visit to the benchmark pages.
    for name, sync in (("latency-cache", latency_cache.sync), ("score-cache", score_cache.sync)):
        threading.Thread(target=sync, name=name, daemon=True).start()
    host, port = _listen(args, config)
    print(f"admin on {site_url(host, port)} (store: {config.database_url})", flush=True)
    try:
        import waitress
    except ImportError:
        app.run(host=host, port=port, threaded=True)
    else:
        waitress.serve(app, host=host, port=port, threads=8, ident="parley-admin")
    return 0


def _password(config: Config) -> str:
    """PARLEY_ADMIN_PASSWORD, else typed twice at a terminal."""
    if config.admin.password:
        return config.admin.password
    if not sys.stdin.isatty():
        raise ParleyError(
            "no terminal to type the password at: set PARLEY_ADMIN_PASSWORD, e.g. "
            "PARLEY_ADMIN_PASSWORD='a long secret' parley admin create-user NAME"
        )
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except EOFError:
        raise ParleyError("no password given (set PARLEY_ADMIN_PASSWORD)") from None
    if first != again:
        raise ParleyError("the passwords differ")
    return first


def create_user(args: argparse.Namespace, config: Config) -> int:
    require_extra()
    from admin.auth import AuthError
    from admin.auth import create_user as create
    from admin.models import create_admin_tables
    from parley import db

    db.open_database(config.database_url)
    create_admin_tables()
    try:
        with db.database.connection_context():
            user = create(args.name, _password(config), args.role, update=args.update)
    except AuthError as exc:
        raise ParleyError(str(exc)) from None
    print(f"{'updated' if args.update else 'created'} {user.role} {user.name!r}")
    return 0


def list_users(args: argparse.Namespace, config: Config) -> int:
    require_extra()
    from admin.models import User, create_admin_tables
    from parley import db

    db.open_database(config.database_url)
    create_admin_tables()
    with db.database.connection_context():
        for user in User.select().order_by(User.name):
            state = "" if user.active else " (inactive)"
            print(f"{user.name:24s} {user.role}{state}")
    return 0


def seed_sample(args: argparse.Namespace, config: Config) -> int:
    """Made-up turns, annotations, groups and spans for trying the bench; the oldest
    turns get audio and a camera frame under the data directory."""
    require_extra()
    from admin.models import create_admin_tables
    from admin.sample_data import PASSWORD, seed
    from parley import db

    if args.turns < 1:
        raise ParleyError("--turns needs at least 1")
    db.open_database(config.database_url)
    create_admin_tables()
    with db.database.connection_context():
        existing = db.Turn.select().count()
        if existing and not args.force:
            raise ParleyError(
                f"the store ({config.database_url}) already holds {existing} turns; sample "
                "data would mix with them. Use another PARLEY_HOME (or --force)"
            )
        media = min(args.media_turns, args.turns)
        result = seed(
            args.turns,
            data_dir=config.data_dir,
            media_turns=media,
            annotators=4,
            seed_value=existing,
        )
    print(
        f"added {result.turns} sample turns ({media} with audio under {config.data_dir}), "
        f"{result.annotations} annotations, {result.groups} groups, {result.spans} spans"
    )
    print(
        f"sample accounts (password {PASSWORD!r}): {result.users[0]} (admin), "
        f"{', '.join(result.users[1:])} (annotators); change or deactivate them before "
        "sharing the site"
    )
    return 0


def run_admin(args: argparse.Namespace, config: Config) -> int:
    commands = {
        "serve": serve,
        "create-user": create_user,
        "users": list_users,
        "seed-sample": seed_sample,
    }
    return commands[args.admin_command](args, config)


def account_count(config: Config) -> int | None:
    """How many admin accounts the store has (None: the store or the extra is missing)."""
    if not available():
        return None
    from admin.models import User, create_admin_tables
    from parley import db

    try:
        db.open_database(config.database_url)
        create_admin_tables()
        with db.database.connection_context():
            return int(User.select().where(User.active == True).count())  # noqa: E712
    except Exception:  # an unreachable store: `parley doctor` says why
        return None


# --------------------------------------------------------------------------- parley up


def available() -> bool:
    try:
        require_extra()
    except ParleyError:
        return False
    return True


def site_url(host: str, port: int) -> str:
    """The address to open in a browser (a wildcard host is reached on loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host
    return f"http://{join_address(shown, port)}/"


def http_up(url: str, timeout: float = 0.5) -> bool:
    """Whether something answers HTTP at ``url`` (any status: the login redirect is fine)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


async def start_with(stack: LocalStack, timeout: float = 60.0) -> tuple[str, str]:
    """Start the admin as one more process of ``stack`` (``parley up``), or reuse one
    already answering; return (address, what happened). Without the [admin] extra it is
    skipped, not an error: the voice stack does not need it."""
    config = stack.config.admin
    address = join_address(config.host, config.port)
    if not available():
        return address, f"not started: {EXTRA_HINT}"
    url = site_url(config.host, config.port) + "login"
    if await asyncio.to_thread(http_up, url):
        return address, "already running"
    process = stack._spawn(ProcessSpec("admin", address, ("admin", "serve")))
    stack.started["admin"] = process  # watched and stopped with the rest
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(http_up, url):
        if process.poll() is not None or time.monotonic() > deadline:
            log_file = stack.log_dir / "admin.log"
            raise ParleyError(f"the admin did not start on {address}; see {log_file}")
        await asyncio.sleep(0.2)
    return address, "started"
