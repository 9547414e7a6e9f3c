"""A PostgreSQL URL without a PostgreSQL driver fails at once with the extra to install,
never later inside peewee (``psycopg2 postgres driver not found.``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from parley import db
from parley.errors import ParleyError

URLS = ["postgresql://parley:x@127.0.0.1:1/parley", "postgres+pool://u@h/d"]


@pytest.fixture
def no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("psycopg2", "psycopg"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError


@pytest.mark.parametrize("url", URLS)
def test_a_postgresql_url_without_a_driver_names_the_extra(no_driver: None, url: str) -> None:
    with pytest.raises(db.MissingDriver) as info:
        db.connect_database(url)
    assert str(info.value) == (
        "PostgreSQL needs the postgres extra: pip install 'parley[postgres]'"
    )
    assert isinstance(info.value, ParleyError) and isinstance(info.value, ValueError)


def test_sqlite_needs_no_postgresql_driver(no_driver: None, tmp_path: Path) -> None:
    database = db.connect_database(f"sqlite:///{tmp_path / 'p.db'}")
    database.connect()
    database.close()


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None, reason="no psycopg2 here")
@pytest.mark.parametrize("url", URLS)
def test_with_the_driver_the_url_is_accepted(url: str) -> None:
    db.require_driver(url)  # nothing raised; connecting is another matter
