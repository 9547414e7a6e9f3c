"""A store made before device tokens upgrades in place: conversations gain ``auth``
and ``peer`` (migration step ``i9sec-conversation-auth``, existing rows keep theirs
empty) and the ``device_token`` table appears."""

from __future__ import annotations

from pathlib import Path

import peewee

from parley import db, migrations


def test_an_older_store_gains_the_auth_columns_and_the_token_table(tmp_path: Path) -> None:
    database = peewee.SqliteDatabase(str(tmp_path / "old.db"))
    migrations.upgrade(database, db.MODELS, migrations.STORE_MIGRATIONS)
    # Take it back to the schema before this change, with a conversation in it.
    database.execute_sql("ALTER TABLE conversation DROP COLUMN auth")
    database.execute_sql("ALTER TABLE conversation DROP COLUMN peer")
    database.execute_sql("DROP TABLE device_token")
    database.execute_sql("DELETE FROM schema_migration WHERE name = 'i9sec-conversation-auth'")
    database.execute_sql(
        "INSERT INTO device (id, first_seen, last_seen, agent_version) "
        "VALUES ('kitchen', '2026-01-01', '2026-01-01', '')"
    )
    database.execute_sql(
        "INSERT INTO conversation (id, device_id, pipeline, started_at) "
        "VALUES ('c1', 'kitchen', 'tiny', '2026-01-01')"
    )

    assert migrations.upgrade(database, db.MODELS, migrations.STORE_MIGRATIONS) == [
        "i9sec-conversation-auth"
    ]
    assert {"auth", "peer"} <= {c.name for c in database.get_columns("conversation")}
    assert database.table_exists("device_token")
    with db.Conversation.bind_ctx(database):
        old = db.Conversation.get_by_id("c1")
        assert (old.auth, old.peer) == ("", "")
    assert migrations.upgrade(database, db.MODELS, migrations.STORE_MIGRATIONS) == []
