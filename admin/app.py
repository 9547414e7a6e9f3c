"""The admin site's app factory: Flask + Flask-Admin on the store's database.

Every response is served by this app (Flask-Admin's bundled Bootstrap and jQuery, our
CSS and JS, SVG charts made on the server), so the site works on an offline network;
the Content-Security-Policy header enforces it.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers.response import Response

from admin import auth, formatting, schema
from admin.models import create_admin_tables
from parley import db
from parley.config import Config

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self' "
    "'unsafe-inline'; script-src 'self' 'nonce-{nonce}'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def load_secret_key(config: Config) -> str:
    """PARLEY_ADMIN_SECRET_KEY, else a random key kept (mode 0600) in <home>."""
    if config.admin.secret_key:
        return config.admin.secret_key
    path = config.home / "admin-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP.format(nonce=g.get("nonce", ""))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def _connect() -> None:
    g.nonce = secrets.token_urlsafe(16)
    g.db = db.database.connection_context()
    g.db.__enter__()


def _disconnect(_exc: BaseException | None) -> None:
    context = g.pop("db", None)
    if context is not None:
        context.__exit__(None, None, None)


def create_app(config: Config, *, secret_key: str | None = None) -> Flask:
    """The admin app over ``config``'s store (tables are created if missing)."""
    db.open_database(config.database_url)
    create_admin_tables()
    schema.install(config.annotation)
    app = Flask(
        __name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static")
    )
    app.config.update(
        SECRET_KEY=secret_key or load_secret_key(config),
        SESSION_COOKIE_NAME="parley_admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.admin.cookie_secure,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        MAX_CONTENT_LENGTH=1 << 20,
        PARLEY_DATA_DIR=str(config.data_dir),
        PARLEY_JAEGER_URL=config.admin.jaeger_url.rstrip("/"),
    )
    CSRFProtect(app)
    if config.admin.trusted_proxies:
        # The client address (the login throttle's key) is the one the proxies forwarded.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.admin.trusted_proxies, x_proto=1
        )
    auth.limiter.init_app(app)
    app.before_request(_connect)
    app.before_request(auth.gate)
    app.teardown_request(_disconnect)
    app.after_request(_headers)
    app.register_blueprint(auth.bp)
    formatting.register(app)
    _register_views(app)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return render_template(
            "parley/error.html", title="Form expired", message=error.description
        ), 400

    @app.errorhandler(403)
    def forbidden(error: Any) -> Any:
        message = "Your account may not do this (annotators change only their own work)."
        return render_template("parley/error.html", title="Not allowed", message=message), 403

    @app.errorhandler(404)
    def not_found(error: Any) -> Any:
        message = "Nothing here: the turn, group or file may have been deleted."
        return render_template("parley/error.html", title="Not found", message=message), 404

    return app


def _register_views(app: Flask) -> None:
    from admin.views import register

    admin = Admin(
        app,
        name="Parley",
        url="/",
        theme=Bootstrap4Theme(base_template="parley/base.html", fluid=True),
        csp_nonce_generator=lambda: g.get("nonce", ""),
        index_view=register.home_view(),
    )
    register.add_views(admin, app)
