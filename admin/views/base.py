"""What every page shares: logged-in access (admin-only where marked) and helpers."""

from __future__ import annotations

from typing import Any

from flask import abort, request
from flask_admin import BaseView

from admin import auth
from admin.filters import as_key

PAGE_SIZE = 50


class SiteView(BaseView):
    """A page for logged-in users; ``admin_only`` pages for admins alone."""

    admin_only = False
    in_menu = True

    def is_accessible(self) -> bool:
        found = auth.current_user()
        return found is not None and (found.is_admin or not self.admin_only)

    def is_visible(self) -> bool:
        return self.in_menu

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        abort(403)


def page_number() -> int:
    """The ?page= argument (1-based, bad values are page 1, at most 10**6)."""
    return min(max(1, as_key(request.args.get("page", "1")) or 1), MAX_PAGE)


MAX_PAGE = 1_000_000


def safe_return(target: str | None, prefix: str) -> str:
    """``target`` if it is a path of this site under ``prefix`` (a page to go back to
    after a form), else "": never a redirect elsewhere."""
    if target and target.startswith(prefix) and "//" not in target and "\\" not in target:
        return target
    return ""


def confirm_page(
    view: BaseView, title: str, message: str, action: str, cancel: str, button: str
) -> Any:
    """Ask before doing something that cannot be undone: a page with a POST form (works
    without JavaScript, under any Content-Security-Policy)."""
    return view.render(
        "parley/confirm.html",
        title=title,
        message=message,
        action=action,
        cancel=cancel,
        button=button,
    )
