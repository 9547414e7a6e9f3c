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
from admin.groups import get_group, group_context
from admin.models import GroupAnnotation, TurnGroup, TurnGroupMember, User
from admin.views.base import PAGE_SIZE, SiteView, confirm_page, page_number, safe_return
from admin.views.queue import get_queue, named_state


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
            parts = back.strip("/").split("/")
            if back and len(parts) == 2 and parts[1].isdigit():  # a group queue's bar
                queue_state = named_state(me, get_queue(int(parts[1]), me), str(group.id))
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
        get_group(group_id)
        TurnGroupMember.delete().where(
            (TurnGroupMember.group == group_id) & (TurnGroupMember.turn == turn_id)
        ).execute()
        return redirect(url_for(".detail", group_id=group_id))
