"""Flask-Admin model views: conversations (read-only, filterable) and user accounts
(admins only; passwords are set, never shown)."""

from __future__ import annotations

from typing import Any

import peewee
from flask import abort, url_for
from flask_admin.contrib.peewee import ModelView, filters
from markupsafe import Markup, escape
from wtforms import Field, Form, PasswordField, SelectField
from wtforms.validators import DataRequired, Optional, ValidationError

from admin import auth
from admin.filters import as_key
from admin.models import ROLES, User
from admin.views.base import MAX_PAGE
from parley import db


class BoundedModelView(ModelView):
    """Flask-Admin's peewee view with its URL values checked before they reach the
    database: a page number out of range is the first or last allowed page, and an id
    that the primary key cannot hold is no record (PostgreSQL rejects a negative OFFSET
    or "abc" for an integer key where SQLite quietly answers)."""

    def get_list(self, page: int | None, *args: Any, **kwargs: Any) -> Any:
        return super().get_list(min(max(page or 0, 0), MAX_PAGE - 1), *args, **kwargs)

    def get_one(self, id: Any) -> Any:
        key = self.model._meta.primary_key
        if isinstance(key, peewee.IntegerField) and as_key(id) is None:
            return None
        return super().get_one(id)


class LoggedInModelView(BoundedModelView):
    admin_only = False

    def is_accessible(self) -> bool:
        found = auth.current_user()
        return found is not None and (found.is_admin or not self.admin_only)

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        abort(403)


def _turns_link(view: Any, context: Any, model: db.Conversation, name: str) -> Markup:
    count = db.Turn.select().where(db.Turn.conversation == model.id).count()
    href = url_for("turns.index", conversation=model.id, order="oldest")
    return Markup('<a href="{}">{} turns</a>').format(href, count)


def _short(view: Any, context: Any, model: db.Conversation, name: str) -> Markup:
    return Markup("<code>{}</code>").format(escape(str(model.id)[:8]))


class ConversationView(LoggedInModelView):
    can_create = can_edit = can_delete = False
    page_size = 50
    column_list = ("id", "device", "pipeline", "started_at", "ended_at", "turns")
    column_formatters = {"turns": _turns_link, "id": _short}
    column_filters = (
        "pipeline",
        filters.FilterEqual(db.Conversation.device, "Device"),
        "started_at",
    )
    column_searchable_list = ("id", "pipeline")
    column_default_sort = ("started_at", True)
    column_sortable_list = ("pipeline", "started_at", "ended_at")


def _user_name(form: Form, field: Field) -> None:
    """The rule `parley admin create-user` applies (auth.check_user_name)."""
    try:
        auth.check_user_name(field.data or "")
    except auth.AuthError as exc:
        raise ValidationError(str(exc)) from None


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class UserView(LoggedInModelView):
    admin_only = True
    can_delete = False  # deactivate instead: annotations keep their author
    column_list = ("name", "role", "active", "created_at", "last_login")
    column_filters = ("role", "active")
    column_searchable_list = ("name",)
    form_columns = ("name", "role", "active", "password")
    form_extra_fields = {
        "password": PasswordField(
            "Password", validators=[Optional()], description="Leave empty to keep it."
        )
    }
    form_overrides = {"role": SelectField}
    form_args = {
        "role": {"choices": list(ROLES)},
        "name": {"validators": [DataRequired(), _user_name], "filters": [_strip]},
    }

    def on_model_change(self, form: Form, model: Any, is_created: bool) -> None:
        password = form.password.data if hasattr(form, "password") else ""
        if is_created and not password:
            raise peewee.IntegrityError("a new user needs a password")
        if password:
            try:
                model.password_hash = auth.hash_password(password)
            except auth.AuthError as exc:
                raise peewee.IntegrityError(str(exc)) from exc
        me = auth.user()
        if model.id == me.id and (model.role != "admin" or not model.active):
            raise peewee.IntegrityError("you cannot demote or deactivate yourself")


def conversations() -> ConversationView:
    return ConversationView(db.Conversation, name="Conversations", endpoint="conversations")


def users() -> UserView:
    return UserView(User, name="Users", endpoint="users")
