"""Schema upgrades on both backends: a store made by the previous release (Parley 0.1,
before schema migrations; its DDL as it ran is in tests/data/schemas/) full of turns,
annotations and spans upgrades in place and keeps working; several processes upgrading
one database at once run each step once, PostgreSQL's advisory lock making the others
wait; and `parley db status` / `parley db upgrade`."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import peewee
import pytest

pytest.importorskip("flask_admin", reason="the admin's tables need the [admin] extra")

from admin import auth, sample_data
from admin.accuracy import ALL as ALL_PIPELINES
from admin.app import create_app
from admin.models import ADMIN_MIGRATIONS, ADMIN_MODELS, create_admin_tables
from parley import db, migrations
from parley.commands import db as db_command
from parley.config import load_config
from tests.admin.conftest import login
from tests.conftest import Cluster, drop_database, execute, new_database

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
ALL_STEPS = [m.name for m in (*migrations.STORE_MIGRATIONS, *ADMIN_MIGRATIONS)]
ROOT = Path(__file__).resolve().parents[2]


def backend(database: peewee.Database) -> str:
    return "postgresql" if isinstance(database, peewee.PostgresqlDatabase) else "sqlite"


def previous_release_store(url: str) -> peewee.Database:
    """The database at ``url`` as Parley 0.1 left it: its tables, no migration record."""
    database = db.connect_database(url)
    text = (SCHEMAS / f"release-0.1-{backend(database)}.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    with database.connection_context():
        for statement in filter(str.strip, body.split(";\n")):
            database.execute_sql(statement)
    return database


def copy_into(source: peewee.Database, target: peewee.Database) -> None:
    """Copy every row of ``source`` (a current store) into ``target`` (an older schema),
    keeping the columns the older schema has: realistic old data without code that
    writes the old schema by hand."""
    with source.connection_context(), target.connection_context(), target.atomic():
        for model in (*db.MODELS, *ADMIN_MODELS):  # dependency order
            table = model._meta.table_name
            if not target.table_exists(table):
                continue
            present = {c.name for c in target.get_columns(table)}
            fields = [f for f in model._meta.sorted_fields if f.column_name in present]
            with model.bind_ctx(source):
                rows = list(model.select(*fields).tuples())
            names = ", ".join(f'"{f.column_name}"' for f in fields)
            marks = ", ".join([target.param] * len(fields))
            target.cursor().executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                [tuple(f.db_value(v) for f, v in zip(fields, row, strict=True)) for row in rows],
            )


def _counts(database: peewee.Database) -> dict[str, int]:
    """Rows per table, for the tables ``database`` has."""
    with database.connection_context(), database.bind_ctx([*db.MODELS, *ADMIN_MODELS]):
        return {
            model._meta.table_name: model.select().count()
            for model in (*db.MODELS, *ADMIN_MODELS)
            if database.table_exists(model._meta.table_name)
        }


def _has_current_schema(database: peewee.Database) -> None:
    """Every column and every index (by its columns) the current models declare."""
    with database.connection_context():
        for model in (*db.MODELS, *ADMIN_MODELS):
            table = model._meta.table_name
            columns = {c.name for c in database.get_columns(table)}
            assert columns == {f.column_name for f in model._meta.sorted_fields}, table
            indexed = {tuple(i.columns) for i in database.get_indexes(table)}
            for index in model._meta.fields_to_index():
                wanted = tuple(f.column_name for f in index._expressions)
                assert wanted in indexed, (table, wanted)


def test_a_previous_release_store_upgrades_in_place_and_keeps_working(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(auth, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    current = db.connect_database(f"sqlite:///{tmp_path}/current.db")
    migrations.upgrade(current, db.MODELS, migrations.STORE_MIGRATIONS)
    migrations.upgrade(current, ADMIN_MODELS, ADMIN_MIGRATIONS)
    db.database.initialize(current)
    with current.connection_context():
        seeded = sample_data.seed(60, annotators=2)
    old = previous_release_store(empty_database_url)
    copy_into(current, old)
    db.database.initialize(old)
    before = _counts(old)
    assert before == {t: n for t, n in _counts(current).items() if t in before}
    assert before["turn"] == 60
    assert migrations.applied(old) == []

    assert db_command.schema_status(empty_database_url).pending == ALL_STEPS
    # What a server start does, then what the admin's start does.
    upgraded = db.open_database(empty_database_url)
    create_admin_tables()
    assert sorted(migrations.applied(upgraded)) == sorted(ALL_STEPS)
    assert {t: n for t, n in _counts(upgraded).items() if t in before} == before
    _has_current_schema(upgraded)

    config = load_config(
        env={"PARLEY_HOME": str(tmp_path), "PARLEY_STORE_DATABASE_URL": empty_database_url}
    )
    client = create_app(config, secret_key="k" * 48).test_client()
    assert login(client, "alice", sample_data.PASSWORD).status_code == 302
    latency = client.get("/latency/summary.json").get_json()  # finished turns
    with upgraded.connection_context():
        done = db.Turn.select().where(db.Turn.status == "done").count()
    assert latency["turns"] == done > seeded.turns // 2
    accuracy = client.get("/accuracy/summary.json").get_json()
    assert accuracy["pipelines"][ALL_PIPELINES]["annotations"] == seeded.annotations


class _Counter(peewee.Model):
    runs = peewee.IntegerField()

    class Meta:
        table_name = "test_step_runs"


def _slow_counting_step(schema: migrations.Schema) -> None:
    """Records that it ran, slowly: without a lock, processes would overlap in it."""
    with _Counter.bind_ctx(schema.database):
        schema.database.create_tables([_Counter], safe=True)
        _Counter.create(runs=1)
    time.sleep(0.3)


def _upgrade_in_a_process(url: str, hold: str = "") -> None:
    """`parley db upgrade` with one more step (which, given ``hold``, first creates that
    file and waits until it is deleted)."""

    def step(schema: migrations.Schema) -> None:
        if hold:
            Path(hold).touch()
            deadline = time.monotonic() + 30
            while Path(hold).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        _slow_counting_step(schema)

    migrations.STORE_MIGRATIONS.append(migrations.Migration("test-slow-count", step))
    db_command.upgrade(url)


def _run_step_count(database: peewee.Database) -> int:
    with database.connection_context(), _Counter.bind_ctx(database):
        return int(_Counter.select().count())


def test_processes_upgrading_one_store_at_once_run_each_step_once(empty_database_url: str):
    old = previous_release_store(empty_database_url)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_upgrade_in_a_process, args=(empty_database_url,)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(90)
        assert process.exitcode == 0
    assert _run_step_count(old) == 1
    assert sorted(migrations.applied(old)) == sorted([*ALL_STEPS, "test-slow-count"])


def test_postgresql_upgrades_wait_for_the_advisory_lock(postgres: Cluster, tmp_path: Path):
    url = new_database(postgres)
    hold = tmp_path / "holding"
    context = multiprocessing.get_context("spawn")
    first = context.Process(target=_upgrade_in_a_process, args=(url, str(hold)))
    first.start()
    try:
        deadline = time.monotonic() + 60
        while not hold.exists():  # the first process is inside its upgrade, lock held
            assert time.monotonic() < deadline and first.is_alive()
            time.sleep(0.05)
        second = context.Process(target=_upgrade_in_a_process, args=(url,))
        second.start()
        waiting: list[tuple[object, ...]] = []
        while not waiting:  # the second one waits on the advisory lock, not in the step
            assert time.monotonic() < deadline and second.is_alive()
            waiting = execute(
                url,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
            )
            time.sleep(0.05)
        held = execute(
            url,
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted",
        )
        assert held == [(migrations._PG_LOCK_KEY,)]
        hold.unlink()
        for process in (first, second):
            process.join(60)
            assert process.exitcode == 0
        database = db.connect_database(url)
        assert _run_step_count(database) == 1
        assert "test-slow-count" in migrations.applied(database)
        database.close()
    finally:
        hold.unlink(missing_ok=True)
        first.kill()
        drop_database(postgres, url)


def _parley(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_parley_db_status_and_upgrade(empty_database_url: str, tmp_path: Path):
    import os

    previous_release_store(empty_database_url)
    env = dict(os.environ, PARLEY_HOME=str(tmp_path), PARLEY_STORE_DATABASE_URL=empty_database_url)
    status = json.loads(_parley("db", "status", "--json", env=env).stdout)
    assert (status["applied"], status["pending"]) == ([], ALL_STEPS)
    upgraded = _parley("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and "applied 0001-baseline" in upgraded.stdout
    status = json.loads(_parley("db", "status", "--json", env=env).stdout)
    assert (status["applied"], status["pending"]) == (ALL_STEPS, [])
    assert "already up to date" in _parley("db", "upgrade", env=env).stdout
    # A database that cannot be reached is one clear line, the password hidden.
    env["PARLEY_STORE_DATABASE_URL"] = "postgresql://parley:s3cret@127.0.0.1:1/parley"
    failed = _parley("db", "status", env=env)
    assert failed.returncode == 2 and "cannot open the database" in failed.stderr
    assert "s3cret" not in failed.stderr and "***" in failed.stderr
