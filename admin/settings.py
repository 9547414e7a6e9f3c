"""Settings admins change in the site, kept in ``admin_setting``.

``show_results``: whether annotators may see the results (the accuracy page, group
means). Off by default: blind rating, so nobody's scores lean towards the figures.
"""

from __future__ import annotations

from typing import Any

from admin.models import Setting, User, utcnow

SHOW_RESULTS = "show_results"
DEFAULTS: dict[str, Any] = {SHOW_RESULTS: False}


def get(key: str) -> Any:
    row = Setting.get_or_none(Setting.key == key)
    return DEFAULTS.get(key) if row is None else row.value


def put(key: str, value: Any) -> None:
    if key not in DEFAULTS:
        raise KeyError(key)
    Setting.insert(key=key, value=value, updated_at=utcnow()).on_conflict(
        conflict_target=[Setting.key], update={Setting.value: value, Setting.updated_at: utcnow()}
    ).execute()


def sees_results(user: User) -> bool:
    """Admins always; annotators only when an admin allowed it (blind rating)."""
    return bool(user.is_admin or get(SHOW_RESULTS))
