"""The annotation and benchmark site (Flask-Admin): `parley admin serve`.

Needs the [admin] extra (flask-admin, flask-wtf, jiwer, waitress).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from parley.config import Config


def create_app(config: Config, *, secret_key: str | None = None) -> Flask:
    from admin.app import create_app as create

    return create(config, secret_key=secret_key)
