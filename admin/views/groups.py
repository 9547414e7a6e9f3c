"""Multi-turn groups: the list, one group's page (its turns in order and the group's
score, one per annotator), and removing groups or members (admins)."""

from __future__ import annotations

import math
from typing import Any

import peewee
from flask import abort, flash, redirect, url_for
from flask_admin import expose

from admin import auth
from admin.annotating import GroupAnnotationForm, save_group_annotation
from admin.filters import as_key
from admin.models import GroupAnnotation, TurnGroup, TurnGroupMember, User, raw_rows
from admin.views.base import PAGE_SIZE, SiteView, page_number
from parley import db


def get_group(group_id: int) -> TurnGroup:
    """The group, or a 404 (also for an id no integer column holds)."""
    group = None if as_key(group_id) is None else TurnGroup.get_or_none(TurnGroup.id == group_id)
    if group is None:
        abort(404)
    return group


class GroupsView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        g, m, ga = TurnGroup, TurnGroupMember, GroupAnnotation
        members = m.select(peewee.fn.COUNT(m.id)).where(m.group == g.id)
        raters = ga.select(peewee.fn.COUNT(ga.id)).where(
            (ga.group == g.id) & ga.score.is_null(False)
        )
        mine = ga.select(ga.score).where((ga.group == g.id) & (ga.user == me.id))
        total = g.select().count()
        page = page_number()
        rows = list(
            g.select(
                g.id,
                g.name,
                g.description,
                g.created_at,
                members.alias("turns"),
                raters.alias("raters"),
                mine.alias("my_score"),
            )
            .order_by(g.created_at.desc(), g.id.desc())
            .paginate(page, PAGE_SIZE)
            .dicts()
        )
        pages = max(1, math.ceil(total / PAGE_SIZE))
        return self.render("parley/groups.html", rows=rows, page=page, pages=pages, total=total)

    @expose("/<int:group_id>")
    def detail(self, group_id: int) -> Any:
        me = auth.user()
        group = get_group(group_id)
        turns = list(
            db.Turn.select(db.Turn, TurnGroupMember.position)
            .join(TurnGroupMember)
            .where(TurnGroupMember.group == group.id)
            .order_by(TurnGroupMember.position)
            .limit(500)
        )
        inputs: dict[str, str] = {}  # turn id -> media path
        outputs: dict[str, str] = {}
        ids = [t.id for t in turns]
        kinds = db.Media.kind.in_(["input", "output"])
        media = db.Media.select(db.Media.turn, db.Media.kind, db.Media.path)
        for turn_id, kind, path in raw_rows(media.where(db.Media.turn.in_(ids) & kinds)):
            (inputs if kind == "input" else outputs).setdefault(turn_id, path)
        mine = GroupAnnotation.get_or_none(
            (GroupAnnotation.group == group.id) & (GroupAnnotation.user == me.id)
        )
        form = GroupAnnotationForm(obj=mine)
        others = []
        if me.is_admin:
            others = list(
                GroupAnnotation.select(GroupAnnotation, User)
                .join(User)
                .where((GroupAnnotation.group == group.id) & (GroupAnnotation.user != me.id))
            )
        return self.render(
            "parley/group.html",
            group=group,
            turns=turns,
            inputs=inputs,
            outputs=outputs,
            form=form,
            others=others,
        )

    @expose("/<int:group_id>/annotate", methods=["POST"])
    def annotate(self, group_id: int) -> Any:
        group = get_group(group_id)
        form = GroupAnnotationForm()
        if form.validate_on_submit():
            save_group_annotation(group, auth.user(), form)
            flash("Group score saved.", "success")
        else:
            flash("; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items()), "error")
        return redirect(url_for(".detail", group_id=group.id))

    @expose("/<int:group_id>/delete", methods=["POST"])
    @auth.admin_required
    def delete(self, group_id: int) -> Any:
        group = get_group(group_id)
        group.delete_instance(recursive=True)
        flash(f"Group {group.name!r} deleted (its turns are kept).", "success")
        return redirect(url_for(".index"))

    @expose("/<int:group_id>/remove/<turn_id>", methods=["POST"])
    @auth.admin_required
    def remove(self, group_id: int, turn_id: str) -> Any:
        get_group(group_id)
        TurnGroupMember.delete().where(
            (TurnGroupMember.group == group_id) & (TurnGroupMember.turn == turn_id)
        ).execute()
        return redirect(url_for(".detail", group_id=group_id))
