"""The annotation table (Flask-Admin model view, read-only: annotations are written on
the turn page, where the save rules apply). Admins see everyone's, deleted ones too
(marked, and restorable); annotators see only their own live ones.

Deleting asks first on a page of its own (Flask-Admin's confirm dialog is an inline
script, which the site's Content-Security-Policy blocks), and is soft. Annotators may
delete only their own annotations; another user's is a 403, whatever the URL says.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEmpty
from markupsafe import Markup

from admin import annotating, auth
from admin.filters import row_or_404
from admin.models import Annotation, User
from admin.views.base import confirm_page
from admin.views.model_views import BoundedModelView


def _turn_link(view: Any, context: Any, model: Annotation, name: str) -> Markup:
    turn_id = str(model.turn_id)
    return Markup('<a href="{}">{}</a>').format(
        url_for("turns.detail", turn_id=turn_id), turn_id[:8]
    )


def _actions(view: Any, context: Any, model: Annotation, name: str) -> Markup:
    if model.deleted_at is not None:
        return Markup('<span class="badge badge-secondary">deleted</span>')
    href = url_for("annotations.delete_one", annotation_id=model.id)
    return Markup('<a class="text-danger" href="{}">delete</a>').format(href)


class AnnotationsView(BoundedModelView):
    can_create = can_edit = can_delete = False
    can_view_details = False
    page_size = 50
    action_disallowed_list = ["delete"]
    column_list = (
        "turn",
        "user",
        "pipeline",
        "stt_score",
        "llm_score",
        "tts_score",
        "overall_score",
        "transcript_state",
        "done",
        "comment",
        "updated_at",
        "deleted_at",
        "actions",
    )
    column_labels = {
        "stt_score": "STT",
        "llm_score": "LLM",
        "tts_score": "TTS",
        "overall_score": "Overall",
        "transcript_state": "transcript",
        "deleted_at": "deleted",
        "actions": "",
    }
    column_formatters = {"turn": _turn_link, "actions": _actions}
    column_filters = (
        "pipeline",
        "transcript_state",
        "done",
        "stt_score",
        "llm_score",
        "tts_score",
        "overall_score",
        FilterEmpty(Annotation.deleted_at, "Deleted"),
    )
    column_searchable_list = ("comment", "corrected_transcript", "better_response")
    column_default_sort = ("updated_at", True)

    def is_accessible(self) -> bool:
        return auth.current_user() is not None

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        abort(403)

    def get_query(self) -> Any:
        me = auth.user()
        query = Annotation.select()
        return query if me.is_admin else query.where((Annotation.user == me.id) & Annotation.live())

    def get_count_query(self) -> Any:
        return self.get_query()

    def _mine_or_admin(self, annotation_id: int) -> Annotation:
        me = auth.user()
        found = row_or_404(Annotation, annotation_id)
        if not me.is_admin and found.user_id != me.id:
            abort(403)
        return found

    @expose("/<int:annotation_id>/delete", methods=["GET", "POST"])
    def delete_one(self, annotation_id: int) -> Any:
        annotation = self._mine_or_admin(annotation_id)
        turn_page = url_for("turns.detail", turn_id=annotation.turn_id)
        if annotation.deleted_at is not None:
            flash("That annotation is deleted already.", "info")
            return redirect(turn_page)
        if request.method == "GET":
            author = User.get_by_id(annotation.user_id).name
            return confirm_page(
                self,
                "Delete this annotation?",
                f"{author}'s annotation of turn {annotation.turn_id} will be left out of "
                "every figure and list. Admins can still see and restore it.",
                url_for(".delete_one", annotation_id=annotation.id),
                turn_page,
                "Delete annotation",
            )
        annotating.delete_annotation(annotation, auth.user())
        flash("Annotation deleted.", "success")
        return redirect(turn_page)

    @expose("/<int:annotation_id>/restore", methods=["POST"])
    @auth.admin_required
    def restore(self, annotation_id: int) -> Any:
        annotation = self._mine_or_admin(annotation_id)
        try:
            annotating.restore_annotation(annotation)
        except ValueError as exc:
            flash(f"Not restored: {exc}.", "error")
        else:
            flash("Annotation restored.", "success")
        return redirect(url_for("turns.detail", turn_id=annotation.turn_id))


def annotations_view() -> AnnotationsView:
    return AnnotationsView(Annotation, name="Annotations", endpoint="annotations")
