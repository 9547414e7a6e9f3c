"""The annotation table (Flask-Admin model view). Admins see and edit everyone's;
annotators see and edit only their own: another user's annotation is a 403, whatever
the URL or the form says."""

from __future__ import annotations

from typing import Any

from flask import abort, url_for
from markupsafe import Markup
from wtforms import Form
from wtforms.validators import NumberRange, Optional

from admin import auth, score_cache
from admin.annotating import set_edit_counts
from admin.models import Annotation, utcnow
from admin.views.model_views import BoundedModelView
from parley import db


def _turn_link(view: Any, context: Any, model: Annotation, name: str) -> Markup:
    turn_id = str(model.turn_id)
    return Markup('<a href="{}">{}</a>').format(
        url_for("turns.detail", turn_id=turn_id), turn_id[:8]
    )


class AnnotationsView(BoundedModelView):
    can_create = False
    can_view_details = False
    page_size = 50
    action_disallowed_list = ["delete"]  # bulk delete would skip the ownership check
    column_list = (
        "turn",
        "user",
        "pipeline",
        "stt_score",
        "llm_score",
        "tts_score",
        "overall_score",
        "comment",
        "updated_at",
    )
    column_labels = {
        "stt_score": "STT",
        "llm_score": "LLM",
        "tts_score": "TTS",
        "overall_score": "Overall",
    }
    column_formatters = {"turn": _turn_link}
    column_filters = ("pipeline", "stt_score", "llm_score", "tts_score", "overall_score")
    column_searchable_list = ("comment", "corrected_transcript", "better_response")
    column_default_sort = ("updated_at", True)
    form_columns = (
        "stt_score",
        "llm_score",
        "tts_score",
        "overall_score",
        "corrected_transcript",
        "better_response",
        "comment",
    )
    form_args = {
        name: {"validators": [Optional(), NumberRange(0, 5)]}
        for name in ("stt_score", "llm_score", "tts_score", "overall_score")
    }

    def is_accessible(self) -> bool:
        return auth.current_user() is not None

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        abort(403)

    def get_query(self) -> Any:
        me = auth.user()
        query = Annotation.select()
        return query if me.is_admin else query.where(Annotation.user == me.id)

    def get_one(self, id: Any) -> Any:
        found = super().get_one(id)
        me = auth.user()
        if found is not None and not me.is_admin and found.user_id != me.id:
            abort(403)
        return found

    def on_model_change(self, form: Form, model: Any, is_created: bool) -> None:
        me = auth.user()
        if not me.is_admin and model.user_id != me.id:
            abort(403)
        turn = db.Turn.get_by_id(model.turn_id)
        set_edit_counts(model, str(turn.transcript))
        model.updated_at = utcnow()

    def after_model_change(self, form: Form, model: Any, is_created: bool) -> None:
        score_cache.refresh([model.turn_id])

    def on_model_delete(self, model: Any) -> None:
        me = auth.user()
        if not me.is_admin and model.user_id != me.id:
            abort(403)

    def after_model_delete(self, model: Any) -> None:
        score_cache.refresh([model.turn_id])


def annotations_view() -> AnnotationsView:
    return AnnotationsView(Annotation, name="Annotations", endpoint="annotations")
