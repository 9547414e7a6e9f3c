"""Browsing turns: the filtered list, one turn's page and its annotation form, deleting
(admins, after a confirmation page), grouping (from the filters or checked rows)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import peewee
from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import expose
from werkzeug.datastructures import MultiDict

from admin import annotating, auth, filters, groups, schema
from admin.filters import TurnFilters
from admin.models import Annotation, User, raw_rows
from admin.queue import counted
from admin.turn_page import turn_context
from admin.views.base import PAGE_SIZE, SiteView, confirm_page, page_number, safe_return
from admin.views.queue import queue_state_for
from parley import db


def get_turn(turn_id: str) -> db.Turn:
    turn = db.Turn.get_or_none(db.Turn.id == turn_id)
    if turn is None:
        abort(404)
    return turn


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
        a = Annotation
        per_turn = (
            a.select(a.turn, peewee.fn.COUNT(a.id))
            .where(a.turn.in_(ids) & counted())
            .group_by(a.turn)
        )
        counts = {turn_id: n for turn_id, n in raw_rows(per_turn)}
        mine = {
            x.turn_id: x for x in a.select().where(a.turn.in_(ids) & (a.user == me.id) & a.live())
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
            all_groups=groups.recent_groups() if me.is_admin else [],
            annotators=list(User.select().where(User.active == True).order_by(User.name))  # noqa: E712
            if me.is_admin
            else [],
        )

    @expose("/<turn_id>")
    def detail(self, turn_id: str) -> Any:
        me = auth.user()
        return self.render("parley/turn.html", queue=None, **turn_context(get_turn(turn_id), me))

    @expose("/<turn_id>/annotate", methods=["POST"])
    def annotate(self, turn_id: str) -> Any:
        """Save the form, or show it again with what is missing (nothing is lost)."""
        me, turn = auth.user(), get_turn(turn_id)
        asked = schema.current().for_turn(str(turn.pipeline), turn.outputs)
        submission = annotating.parse(request.form, asked, turn)
        back = safe_return(request.form.get("return_to"), "/queue/")
        if submission.problems:
            queue_state = queue_state_for(me, back, turn) if back else None  # the queue bar
            context = turn_context(turn, me, submitted=request.form)
            context["problems"] = submission.problems
            return self.render("parley/turn.html", queue=queue_state, **context), 422
        annotating.save_annotation(turn, me, submission, asked)
        if back:
            return redirect(back)
        flash("Annotation saved.", "success")
        return redirect(url_for(".detail", turn_id=turn.id))

    @expose("/<turn_id>/delete", methods=["GET", "POST"])
    @auth.admin_required
    def delete(self, turn_id: str) -> Any:
        turn = get_turn(turn_id)
        if request.method == "GET":
            return confirm_page(
                self,
                "Delete this turn?",
                f"Turn {turn.id}, its media files and its "
                f"{Annotation.select().where(Annotation.turn == turn.id).count()} annotations "
                "will be deleted for good.",
                url_for(".delete", turn_id=turn.id),
                url_for(".detail", turn_id=turn.id),
                "Delete turn",
            )
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
        ordered = query.order_by(db.Turn.created_at, db.Turn.id).limit(groups.GROUP_LIMIT)
        ids = [turn_id for (turn_id,) in raw_rows(ordered)]
        group = groups.create_group(name, (request.form.get("description") or ""), me)
        added = groups.add_turns(group, ids)
        flash(f"Group {name!r} made of {added} turns.", "success")
        return redirect(url_for("groups.detail", group_id=group.id))

    @expose("/group/add", methods=["POST"])
    @auth.admin_required
    def add_to_group(self) -> Any:
        """Add the turns checked in the list to a group (an existing one, or a new one)."""
        me = auth.user()
        form: MultiDict[str, str] = request.form
        ids = [t for t in form.getlist("turn") if t][: groups.GROUP_LIMIT]
        back = safe_return(form.get("return_to"), "/turns/") or url_for(".index")
        if not ids:
            flash("Tick the turns to add first.", "error")
            return redirect(back)
        target = form.get("group", "")
        name = (form.get("name") or "").strip()
        if target.isdigit():
            group = groups.get_group(int(target))
        elif name:
            group = groups.create_group(name, "", me)
        else:
            flash("Choose a group, or name a new one.", "error")
            return redirect(back)
        added = groups.add_turns(group, ids)
        flash(
            f"{added} turns added to group {group.name!r} ({len(ids) - added} were in it).",
            "success",
        )
        return redirect(back)
