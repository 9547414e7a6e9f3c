"""The home page: what is in the store, and where the user's work stands."""

from __future__ import annotations

from typing import Any

from flask_admin import AdminIndexView, expose

from admin import auth, filters, queue, queues
from admin.models import Annotation, TurnGroup
from parley import db


class HomeView(AdminIndexView):
    def is_accessible(self) -> bool:
        return auth.current_user() is not None

    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        return self.render(
            "parley/home.html",
            turns=db.Turn.select().count(),
            conversations=db.Conversation.select().count(),
            devices=db.Device.select().count(),
            annotations=Annotation.select().where(queue.counted()).count(),
            groups=TurnGroup.select().count(),
            failed=db.Turn.select().where(db.Turn.status == "failed").count(),
            pipelines=filters.pipelines(),
            progress=queue.progress(me.id),
            my_queues=queues.queues_for(me),
        )
