"""Multi-turn groups: the list, one group's page (its turns in order and the group's
score, one per annotator; also the page a group queue shows), and removing groups or
members (admins)."""

from __future__ import annotations

import math
from typing import Any

import peewee
from flask import flash, redirect, request, url_for
from flask_admin import expose

from admin import annotating, auth
from admin.groups import get_group
from admin.models import GroupAnnotation, TurnGroup, TurnGroupMember, User, raw_rows
from admin.views.base import PAGE_SIZE, SiteView, confirm_page, page_number, safe_return
from parley import db


def group_context(group: TurnGroup, me: User, sent: dict[str, str] | None = None) -> dict[str, Any]:
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
    if sent is not None:
        score, comment = sent.get("score", ""), sent.get("comment", "")
    elif mine is not None:
        score = "na" if mine.not_applicable else ("" if mine.score is None else str(mine.score))
        comment = str(mine.comment)
    else:
        score, comment = "", ""
    others = []
    if me.is_admin:
        others = list(
            GroupAnnotation.select(GroupAnnotation, User)
            .join(User)
            .where((GroupAnnotation.group == group.id) & (GroupAnnotation.user != me.id))
        )
    return {
        "group": group,
        "turns": turns,
        "inputs": inputs,
        "outputs": outputs,
        "score": score,
        "comment": comment,
        "others": others,
        "problem": "",
    }


class GroupsView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        g, m, ga = TurnGroup, TurnGroupMember, GroupAnnotation
        members = m.select(peewee.fn.COUNT(m.id)).where(m.group == g.id)
        raters = ga.select(peewee.fn.COUNT(ga.id)).where(
            (ga.group == g.id) & (ga.score.is_null(False) | (ga.not_applicable == True))  # noqa: E712
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
        annotators = (
            list(User.select().where(User.active == True).order_by(User.name))  # noqa: E712
            if me.is_admin
            else []
        )
        return self.render(
            "parley/groups.html",
            rows=rows,
            page=page,
            pages=pages,
            total=total,
            annotators=annotators,
        )

    @expose("/<int:group_id>")
    def detail(self, group_id: int) -> Any:
        me = auth.user()
        return self.render(
            "parley/group.html", queue=None, **group_context(get_group(group_id), me)
        )

    @expose("/<int:group_id>/annotate", methods=["POST"])
    def annotate(self, group_id: int) -> Any:
        me, group = auth.user(), get_group(group_id)
        score, na, problem = annotating.parse_group_score(request.form)
        back = safe_return(request.form.get("return_to"), "/queue/")
        if problem:
            context = group_context(group, me, sent=dict(request.form.items()))
            context["problem"] = problem
            queue_state = None
            if back:
                from admin.views.queue import _named, get_queue

                parts = back.strip("/").split("/")
                if len(parts) == 2 and parts[1].isdigit():
                    queue_state = _named(me, get_queue(int(parts[1]), me), str(group.id))
            return self.render("parley/group.html", queue=queue_state, **context), 422
        annotating.save_group_annotation(group, me, score, na, request.form.get("comment", ""))
        if back:
            return redirect(back)
        flash("Group score saved.", "success")
        return redirect(url_for(".detail", group_id=group.id))

    @expose("/<int:group_id>/delete", methods=["GET", "POST"])
    @auth.admin_required
    def delete(self, group_id: int) -> Any:
        group = get_group(group_id)
        if request.method == "GET":
            return confirm_page(
                self,
                "Delete this group?",
                f"Group {group.name!r} and its group scores will be deleted; its turns stay.",
                url_for(".delete", group_id=group.id),
                url_for(".detail", group_id=group.id),
                "Delete group",
            )
        group.delete_instance(recursive=True)
        flash(f"Group {group.name!r} deleted (its turns are kept).", "success")
        return redirect(url_for(".index"))

    @expose("/<int:group_id>/remove/<turn_id>", methods=["POST"])
    @auth.admin_required
    def remove(self, group_id: int, turn_id: str) -> Any:
        TurnGroupMember.delete().where(
            (TurnGroupMember.group == group_id) & (TurnGroupMember.turn == turn_id)
        ).execute()
        return redirect(url_for(".detail", group_id=group_id))
