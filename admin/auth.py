"""Accounts, login and the gate in front of every page.

Passwords are stored as werkzeug scrypt hashes. A signed session cookie carries the
user's id plus a fingerprint of their password hash, so changing a password or
deactivating an account ends every session of that user. Nothing but the login page is
served without a session: pages, exports, media and static files all go through
:func:`gate`. Repeated failed logins for one name are refused for a while.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers.response import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from admin.models import ROLES, User, utcnow

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login"}
MIN_PASSWORD = 8
PASSWORD_METHOD = "scrypt"  # werkzeug's default; the hash records its method
MAX_FAILURES, LOCKOUT_S = 5, 300.0
F = TypeVar("F", bound=Callable[..., Any])


class AuthError(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method=PASSWORD_METHOD)


def create_user(name: str, password: str, role: str, *, update: bool = False) -> User:
    """Create (or, with ``update``, re-password and re-role) an account."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    name = name.strip()
    if not name or len(name) > 64:
        raise AuthError("a user name has 1 to 64 characters")
    user = User.get_or_none(User.name == name)
    if user is not None and not update:
        raise AuthError(f"user {name!r} exists (use --update to change it)")
    if user is None:
        return cast(User, User.create(name=name, password_hash=hash_password(password), role=role))
    user.password_hash, user.role, user.active = hash_password(password), role, True
    user.save()
    return cast(User, user)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(str(user.password_hash).encode()).hexdigest()[:16]


class _Throttle:
    """Failed logins per user name; after MAX_FAILURES, refuse for LOCKOUT_S."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def locked(self, name: str) -> bool:
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if time.monotonic() - t < LOCKOUT_S]
            self._failures[name] = recent
            return len(recent) >= MAX_FAILURES

    def failed(self, name: str) -> None:
        with self._lock:
            self._failures.setdefault(name, []).append(time.monotonic())

    def clear(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


throttle = _Throttle()


def current_user() -> User | None:
    return cast("User | None", g.get("user"))


def user() -> User:
    """The logged-in user (every view but login runs behind the gate)."""
    found = current_user()
    if found is None:
        abort(401)
    return found


def load_user() -> None:
    g.user = None
    uid, fingerprint = session.get("uid"), session.get("fp")
    if uid is None:
        return
    found = User.get_or_none((User.id == uid) & (User.active == True))  # noqa: E712
    if found is not None and fingerprint == _fingerprint(found):
        g.user = found
    else:
        session.clear()


def gate() -> Response | None:
    """before_request: everything but the login page needs a session."""
    load_user()
    if g.user is not None or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.method == "GET" and not request.path.startswith(("/media/", "/static/")):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(401)


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not user().is_admin:
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("admin.index")


class LoginForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    error = ""
    if form.validate_on_submit():
        name = str(form.name.data).strip()
        found = User.get_or_none((User.name == name) & (User.active == True))  # noqa: E712
        if throttle.locked(name):
            error = "Too many failed attempts; wait a few minutes."
        elif found is None or not check_password_hash(found.password_hash, form.password.data):
            throttle.failed(name)
            error = "Wrong name or password."
        else:
            throttle.clear(name)
            session.clear()  # a fresh session: no fixation
            session.permanent = True
            session["uid"], session["fp"] = found.id, _fingerprint(found)
            found.last_login = utcnow()
            found.save(only=[User.last_login])
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    no_accounts = not User.select().exists()  # say how to make the first one
    return render_template(
        "parley/login.html", form=form, error=error, no_accounts=no_accounts
    ), status


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    return redirect(url_for("auth.login"))
