"""Which views the site has, in menu order."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin, AdminIndexView

from admin.views import (
    accuracy,
    annotation_table,
    compare,
    export,
    groups,
    home,
    latency,
    media,
    model_views,
    queue,
    queues,
    traces,
    turns,
)


def home_view() -> AdminIndexView:
    return home.HomeView(name="Home", url="/")


def add_views(admin: Admin, app: Flask) -> None:
    admin.add_view(turns.TurnsView(name="Turns", endpoint="turns", url="/turns"))
    admin.add_view(model_views.conversations())
    admin.add_view(queue.QueueView(name="Queue", endpoint="queue", url="/queue"))
    admin.add_view(groups.GroupsView(name="Groups", endpoint="groups", url="/groups"))
    admin.add_view(latency.LatencyView(name="Latency", endpoint="latency", url="/latency"))
    admin.add_view(accuracy.AccuracyView(name="Accuracy", endpoint="accuracy", url="/accuracy"))
    admin.add_view(compare.CompareView(name="Compare", endpoint="compare", url="/compare"))
    admin.add_view(queue.ProgressView(name="Progress", endpoint="progress", url="/progress"))
    admin.add_view(queues.QueuesView(name="Queues", endpoint="queues", url="/queues"))
    admin.add_view(annotation_table.annotations_view())
    admin.add_view(model_views.users())
    admin.add_view(traces.TraceView(name="Trace", endpoint="traces", url="/traces"))
    admin.add_view(export.ExportView(name="Export", endpoint="export", url="/export"))
    app.register_blueprint(media.bp)
