"""Jinja filters and globals shared by the templates."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from flask import Flask, current_app

from admin import auth

DASH = "\u2013"  # en dash


def number(value: Any, digits: int = 1) -> str:
    """A figure, or a dash for missing/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.{digits}f}"


def percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return f"{100.0 * float(value):.1f} %"


def when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return DASH if value is None else str(value)[:19]  # raw ISO text from an aggregate


def score(value: Any) -> str:
    return DASH if value is None else str(value)


def zip_self(values: Any) -> list[tuple[Any, Any]]:
    """[a, b] -> [(a, a), (b, b)]: options whose value is their label."""
    return [(v, v) for v in values]


def register(app: Flask) -> None:
    app.jinja_env.filters.update(
        number=number, percent=percent, when=when, score=score, zip_self=zip_self
    )

    @app.context_processor
    def globals_() -> dict[str, Any]:
        return {
            "current_user": auth.current_user(),
            "jaeger_url": current_app.config.get("PARLEY_JAEGER_URL", ""),
        }
