"""Schema migrations on real SQLite files: a new database, an old one upgraded, a
failing step rolled back, and several processes upgrading the same file at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import peewee
import pytest

from parley import db, migrations
from parley.migrations import Migration, Schema


class OldThing(peewee.Model):
    name = peewee.CharField()

    class Meta:
        table_name = "thing"


class Thing(peewee.Model):
    """``thing`` as a later release has it: one column more, indexed, with a default."""

    name = peewee.CharField()
    colour = peewee.CharField(default="blue", index=True)

    class Meta:
        table_name = "thing"


def _add_colour(schema: Schema) -> None:
    schema.add_columns(Thing, "colour")


STEPS = [Migration("0001-baseline", lambda s: None), Migration("0002-colour", _add_colour)]


def _database(path: Path) -> peewee.SqliteDatabase:
    return peewee.SqliteDatabase(str(path), pragmas={"busy_timeout": 10000})


def test_a_new_database_gets_the_current_schema_and_every_step_recorded(tmp_path: Path):
    database = _database(tmp_path / "new.db")
    ran = migrations.upgrade(database, [Thing], STEPS)
    assert ran == ["0001-baseline", "0002-colour"]
    assert {c.name for c in database.get_columns("thing")} == {"id", "name", "colour"}
    assert migrations.pending(database, STEPS) == []
    assert migrations.upgrade(database, [Thing], STEPS) == []  # idempotent


def test_an_old_database_is_upgraded_in_place_keeping_its_rows(tmp_path: Path):
    database = _database(tmp_path / "old.db")
    migrations.upgrade(database, [OldThing], STEPS[:1])
    with OldThing.bind_ctx(database):
        OldThing.create(name="lamp")
    assert migrations.pending(database, STEPS) == ["0002-colour"]

    assert migrations.upgrade(database, [Thing], STEPS) == ["0002-colour"]
    with Thing.bind_ctx(database):
        (lamp,) = Thing.select()
        assert (lamp.name, lamp.colour) == ("lamp", "blue")
    assert "thing_colour" in {i.name for i in database.get_indexes("thing")}


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path: Path):
    database = _database(tmp_path / "fail.db")
    migrations.upgrade(database, [OldThing], STEPS[:1])

    def broken(schema: Schema) -> None:
        schema.add_columns(Thing, "colour")
        raise RuntimeError("step failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        migrations.upgrade(database, [Thing], [*STEPS[:1], Migration("0002-colour", broken)])
    assert {c.name for c in database.get_columns("thing")} == {"id", "name"}
    assert migrations.applied(database) == ["0001-baseline"]


def test_duplicate_step_names_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="duplicate"):
        migrations.upgrade(_database(tmp_path / "d.db"), [Thing], [STEPS[0], STEPS[0]])


class Counter(peewee.Model):
    n = peewee.IntegerField()

    class Meta:
        table_name = "counter"


def _count_once(schema: Schema) -> None:
    with Counter.bind_ctx(schema.database):
        Counter.create(n=1)


def _upgrade_in_a_process(path: str) -> None:
    database = _database(Path(path))
    migrations.upgrade(database, [Counter], [Migration("0001-count", _count_once)])


def test_processes_upgrading_one_file_at_once_run_each_step_once(tmp_path: Path):
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_upgrade_in_a_process, args=(path,)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    database = _database(Path(path))
    with Counter.bind_ctx(database):
        assert Counter.select().count() == 1


def test_the_store_records_its_steps_on_open(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/parley.db"
    opened = db.open_database(url)
    assert migrations.applied(opened) == [m.name for m in migrations.STORE_MIGRATIONS]


def test_a_store_from_before_datasets_gains_their_tables_and_keeps_its_turns(tmp_path: Path):
    database = _database(tmp_path / "old.db")
    before = [db.Device, db.Conversation, db.Turn, db.Media, db.Span]
    migrations.upgrade(database, before, migrations.STORE_MIGRATIONS[:1])
    with database.bind_ctx(before):
        db.Device.create(id="pi")
        db.Conversation.create(id="c", device="pi", pipeline="tiny")
        db.Turn.create(id="t", conversation="c", position=0, pipeline="tiny")
    assert "run_item" not in database.get_tables()

    assert migrations.upgrade(database, db.MODELS, migrations.STORE_MIGRATIONS) == [
        "i12-datasets-runs"
    ]
    assert {"dataset", "dataset_item", "run", "run_item"} <= set(database.get_tables())
    with database.bind_ctx(db.MODELS):
        dataset = db.Dataset.create(name="d")
        item = db.DatasetItem.create(
            dataset=dataset, position=0, key="k", audio_path="a.wav", sample_rate=16000, seconds=1
        )
        run = db.Run.create(name="r", dataset=dataset, pipeline="tiny")
        db.RunItem.create(run=run, item=item, turn="t")
        assert db.RunItem.get().turn.id == "t"
        assert db.Turn.select().count() == 1
