"""Fixtures shared by every test directory: the store's database on each backend.

``database_url`` runs a test twice, on SQLite (a file in the test's directory) and on
PostgreSQL (a fresh database in one throwaway cluster per test session, see
tests/postgres.py). The PostgreSQL run is skipped, saying why, only where PostgreSQL is
not installed (``scripts/bootstrap.sh dev`` installs Debian's postgresql-15 as root).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import Cluster, find_bindir

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL server for this test session (started in about a second)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed: `sudo apt-get install postgresql-15` (or run "
            "scripts/bootstrap.sh dev as root), or set PARLEY_TEST_PG_BINDIR"
        )
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("psycopg2 is not installed: pip install 'parley[postgres]'")
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


def execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    """Run ``statements`` on ``url`` outside a transaction; the last one's rows."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def new_database(cluster: Cluster) -> str:
    """A new, empty database on ``cluster``; returns its URL."""
    name = f"parley_test_{os.getpid()}_{next(_databases)}"
    execute(cluster.url(), f'CREATE DATABASE "{name}"')
    return cluster.url(name)


def drop_database(cluster: Cluster, url: str) -> None:
    """Drop the database at ``url``, disconnecting whoever is still connected."""
    execute(cluster.url(), f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_store(postgres: Cluster) -> str:
    """One PostgreSQL database with the store's and the admin's current schema, shared by
    the session's tests and emptied before each (``database_url``)."""
    from admin.models import create_admin_tables
    from parley import db

    url = new_database(postgres)
    db.open_database(url)
    create_admin_tables()
    db.database.close()
    return url


def empty_tables(url: str) -> None:
    """Disconnect every other client of ``url``'s database, then empty all its tables but
    the record of applied migrations (about 40 ms; a new database costs 250)."""
    (tables,) = execute(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename <> 'schema_migration'",
    )
    execute(url, f"TRUNCATE {tables[0]} RESTART IDENTITY CASCADE")


def _close_this_threads_connection() -> None:
    from parley import db

    if db.database.obj is not None:
        db.database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store (current schema, no rows): a new SQLite file, then the
    session's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/parley.db"
        return
    url: str = request.getfixturevalue("postgres_store")
    _close_this_threads_connection()
    empty_tables(url)
    yield url
    _close_this_threads_connection()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a brand-new database without any table, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    url = new_database(cluster)
    yield url
    _close_this_threads_connection()
    drop_database(cluster, url)
