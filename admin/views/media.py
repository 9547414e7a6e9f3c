"""Turn media (audio, frames) from the data directory, to logged-in users only (the
gate), only files the store recorded, never outside the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, send_file

from parley import db

bp = Blueprint("media", __name__)


def resolve(data_dir: Path, relative: str) -> Path | None:
    """``relative`` below ``data_dir``, or None for anything that leaves it."""
    if not relative or "\x00" in relative or Path(relative).is_absolute():
        return None
    root = data_dir.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


@bp.route("/media/<path:relative>")
def serve(relative: str) -> Any:
    path = resolve(Path(current_app.config["PARLEY_DATA_DIR"]), relative)
    row = None if path is None else db.Media.get_or_none(db.Media.path == relative)
    if row is None or path is None or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=str(row.mime), conditional=True, max_age=0)
    response.headers["Cache-Control"] = "private, no-cache"
    return response
