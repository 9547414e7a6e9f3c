"""Browsing turns: the filtered list, one turn's page, deleting (admins), grouping."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import peewee
from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import expose

from admin import auth, filters, timeline
from admin.annotating import AnnotationForm, my_annotation, save_annotation
from admin.charts import waterfall
from admin.filters import TurnFilters
from admin.models import Annotation, TurnGroup, TurnGroupMember, User, raw_rows
from admin.views.base import PAGE_SIZE, SiteView, page_number
from parley import db

GROUP_LIMIT = 500


def get_turn(turn_id: str) -> db.Turn:
    turn = db.Turn.get_or_none(db.Turn.id == turn_id)
    if turn is None:
        abort(404)
    return turn


def turn_context(turn: db.Turn, user: User) -> dict[str, Any]:
    """Everything the turn page (and the queue, which shows the same page) needs."""
    media = list(db.Media.select().where(db.Media.turn == turn.id).order_by(db.Media.path))
    mine = my_annotation(turn, user)
    form = (
        AnnotationForm(obj=mine) if mine else AnnotationForm(corrected_transcript=turn.transcript)
    )
    others: list[Annotation] = []
    if user.is_admin:
        query = Annotation.select(Annotation, User).join(User).where(Annotation.turn == turn.id)
        others = [a for a in query if a.user_id != user.id]
    conversation = turn.conversation
    siblings = db.Turn.select(db.Turn.id, db.Turn.position).where(
        db.Turn.conversation == conversation.id
    )
    position = int(turn.position)
    previous = siblings.where(db.Turn.position == position - 1).first()
    following = siblings.where(db.Turn.position == position + 1).first()
    groups = (
        TurnGroup.select().join(TurnGroupMember).where(TurnGroupMember.turn == turn.id).limit(20)
    )
    record = turn.latency or {}
    spans = db.Span.select().where(db.Span.turn_id == turn.id).count()
    outputs = (
        db.StageOutput.select().where(db.StageOutput.turn == turn.id).order_by(db.StageOutput.id)
    )
    return {
        "turn": turn,
        "conversation": conversation,
        "inputs": [m for m in media if m.kind == "input"],
        "outputs": [m for m in media if m.kind == "output"],
        "frames": [m for m in media if m.kind == "frame"],
        "form": form,
        "mine": mine,
        "others": others,
        "previous": previous,
        "following": following,
        "groups": list(groups),
        "latency": sorted(record.items()),
        "latency_chart": waterfall(timeline.latency_bars(record)),
        "span_count": spans,
        "stage_outputs": list(outputs),
    }


class TurnsView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        chosen = TurnFilters.parse(request.args)
        query = chosen.apply(db.Turn.select(), me.id)
        total = query.count()
        page = page_number()
        pages = max(1, math.ceil(total / PAGE_SIZE))
        newest = request.args.get("order") != "oldest"
        order = db.Turn.created_at.desc() if newest else db.Turn.created_at.asc()
        rows = list(
            query.select(
                db.Turn, db.Conversation.device, db.Conversation.auth, db.Conversation.peer
            )
            .join(db.Conversation)
            .order_by(order, db.Turn.id)
            .paginate(page, PAGE_SIZE)
        )
        ids = [t.id for t in rows]
        per_turn = (
            Annotation.select(Annotation.turn, peewee.fn.COUNT(Annotation.id))
            .where(Annotation.turn.in_(ids))
            .group_by(Annotation.turn)
        )
        counts = {turn_id: n for turn_id, n in raw_rows(per_turn)}
        mine = {
            a.turn_id: a
            for a in Annotation.select().where(
                Annotation.turn.in_(ids) & (Annotation.user == me.id)
            )
        }
        return self.render(
            "parley/turns.html",
            rows=rows,
            counts=counts,
            mine=mine,
            total=total,
            page=page,
            pages=pages,
            filters=chosen,
            order="newest" if newest else "oldest",
            pipelines=filters.pipelines(),
            devices=filters.devices(),
            statuses=filters.STATUSES,
            annotated_choices=filters.ANNOTATED,
        )

    @expose("/<turn_id>")
    def detail(self, turn_id: str) -> Any:
        me = auth.user()
        return self.render("parley/turn.html", queue=None, **turn_context(get_turn(turn_id), me))

    @expose("/<turn_id>/annotate", methods=["POST"])
    def annotate(self, turn_id: str) -> Any:
        me, turn = auth.user(), get_turn(turn_id)
        form = AnnotationForm()
        if not form.validate_on_submit():
            for field, errors in form.errors.items():
                flash(f"{field}: {'; '.join(errors)}", "error")
            return redirect(url_for(".detail", turn_id=turn.id))
        save_annotation(turn, me, form)
        if request.form.get("next") == "queue":
            args: dict[str, Any] = {k: v for k in ("pipeline",) if (v := request.form.get(k))}
            return redirect(url_for("queue.index", **args))
        flash("Annotation saved.", "success")
        return redirect(url_for(".detail", turn_id=turn.id))

    @expose("/<turn_id>/delete", methods=["POST"])
    @auth.admin_required
    def delete(self, turn_id: str) -> Any:
        turn = get_turn(turn_id)
        data_dir = Path(current_app.config["PARLEY_DATA_DIR"]).resolve()
        paths = [m.path for m in db.Media.select(db.Media.path).where(db.Media.turn == turn.id)]
        with db.database.atomic():
            turn.delete_instance(recursive=True)
        for relative in paths:
            path = (data_dir / relative).resolve()
            if path.is_relative_to(data_dir):
                with contextlib.suppress(OSError):
                    path.unlink()
        flash(f"Turn {turn_id} deleted with its media and annotations.", "success")
        return redirect(url_for(".index"))

    @expose("/group", methods=["POST"])
    @auth.admin_required
    def group(self) -> Any:
        """Make a group of the turns the filters select (oldest first)."""
        me = auth.user()
        chosen = TurnFilters.parse(request.form)
        name = (request.form.get("name") or "").strip()[:200]
        if not name:
            flash("A group needs a name.", "error")
            return redirect(url_for(".index", **chosen.args()))
        query = chosen.apply(db.Turn.select(db.Turn.id), me.id)
        ordered = query.order_by(db.Turn.created_at, db.Turn.id).limit(GROUP_LIMIT)
        ids = [turn_id for (turn_id,) in raw_rows(ordered)]
        with db.database.atomic():
            group = TurnGroup.create(
                name=name,
                description=(request.form.get("description") or "")[:5000],
                created_by=me.id,
            )
            members = [{"group": group.id, "turn": t, "position": i} for i, t in enumerate(ids)]
            if members:
                TurnGroupMember.insert_many(members).execute()
        flash(f"Group {name!r} made of {len(ids)} turns.", "success")
        return redirect(url_for("groups.detail", group_id=group.id))
