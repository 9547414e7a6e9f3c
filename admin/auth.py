"""Accounts, login and the gate in front of every page.

Passwords are stored as werkzeug scrypt hashes. A signed session cookie carries the
user's id plus a fingerprint of their password hash, so changing a password or
deactivating an account ends every session of that user. Nothing but the login page is
served without a session: pages, exports, media and static files all go through
:func:`gate`.

Logging in reveals nothing and locks nobody out: failed logins are throttled per client
address (Flask-Limiter), never per account, so nobody can lock another user out; an
unknown or deactivated name costs the same password hash as a real one (a dummy hash),
so the time taken does not tell whether a user exists; and the page returned to after
login (``next``) is only ever a path on this site (:func:`safe_next`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask import Response as FlaskResponse
from flask_limiter import Limiter, RequestLimit
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers.response import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from admin.models import ROLES, User, utcnow

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login"}
MIN_PASSWORD = 8
MAX_NAME = 64
PASSWORD_METHOD = "scrypt"  # werkzeug's default; the hash records its method
# Failed logins allowed from one client address (IPv6: one /64) in a moving window;
# beyond that, logins from there are refused (429) until the oldest failure ages out.
MAX_FAILURES, THROTTLE_MINUTES = 10, 5
F = TypeVar("F", bound=Callable[..., Any])


class AuthError(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method=PASSWORD_METHOD)


def check_user_name(name: str) -> str:
    """``name`` without surrounding spaces, or AuthError: a user name has 1 to 64
    printable characters (no control characters such as NUL, tab or newline)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise AuthError(f"a user name has 1 to {MAX_NAME} characters")
    if not name.isprintable():
        raise AuthError("a user name has printable characters only (no control characters)")
    return name


def create_user(name: str, password: str, role: str, *, update: bool = False) -> User:
    """Create (or, with ``update``, re-password and re-role) an account."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    name = check_user_name(name)
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


def client_network() -> str:
    """The throttle's key: the client's address (behind ``[admin] trusted_proxies`` the
    one they forwarded), or its /64 for IPv6, which one host usually holds whole."""
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


limiter = Limiter(
    key_func=client_network,
    storage_uri="memory://",
    strategy="moving-window",
    default_limits=[],
    headers_enabled=False,
)

_dummy_hashes: dict[str, str] = {}


def dummy_hash() -> str:
    """A hash of a random password made like real ones (:data:`PASSWORD_METHOD`):
    checking a password against it costs what checking a real user's costs."""
    if PASSWORD_METHOD not in _dummy_hashes:
        _dummy_hashes[PASSWORD_METHOD] = generate_password_hash(
            secrets.token_urlsafe(24), method=PASSWORD_METHOD
        )
    return _dummy_hashes[PASSWORD_METHOD]


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


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the home page: never an open
    redirect.

    Only printable ASCII starting with a single "/" passes. Refused, whatever the
    encoding: anything with a scheme or a host (``https://x``, ``//x``, ``/\\x``),
    backslashes (browsers read them as "/"), whitespace and control characters
    (browsers drop tabs and newlines, so "/", tab, "/x" becomes ``//x``), and paths whose
    percent-decoded form would be one of those (for a proxy that decodes once more)."""
    home = url_for("admin.index")
    if not target or not target.isascii() or not target.startswith("/"):
        return home
    path = target.split("?", 1)[0]
    decoded = path
    for _ in range(3):  # %252F -> %2F -> /
        decoded = unquote(decoded)
    for text in (target, decoded):
        if any(c <= " " or c == "\x7f" or c == "\\" for c in text):
            return home
    if target.startswith("//") or decoded.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


class LoginForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _throttled(limit: RequestLimit) -> FlaskResponse:
    """The login page, refused (429) while this address is over its failures."""
    error = "Too many failed logins from your address; wait a few minutes."
    page = render_template("parley/login.html", form=LoginForm(), error=error)
    return make_response(page, 429)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    f"{MAX_FAILURES} per {THROTTLE_MINUTES} minutes",
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 401,
    on_breach=_throttled,
)
def login() -> Any:
    form = LoginForm()
    error = ""
    if form.validate_on_submit():
        name = str(form.name.data).strip()
        found = User.get_or_none((User.name == name) & (User.active == True))  # noqa: E712
        # Unknown and deactivated names are checked against a dummy hash: the same work.
        stored = str(found.password_hash) if found is not None else dummy_hash()
        if not check_password_hash(stored, form.password.data) or found is None:
            error = "Wrong name or password."
        else:
            session.clear()  # a fresh session: no fixation
            session.permanent = True
            session["uid"], session["fp"] = found.id, _fingerprint(found)
            found.last_login = utcnow()
            found.save(only=[User.last_login])
            return redirect(safe_next(request.args.get("next")))
    status = 401 if error else 200
    no_accounts = not User.select().exists()  # say how to make the first one
    return render_template(
        "parley/login.html", form=form, error=error, no_accounts=no_accounts
    ), status


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    return redirect(url_for("auth.login"))
