"""Every total on every page equals a direct count on seeded data.

Each figure a page shows as a total carries ``data-total="name"`` (admin templates); the
test reads them all, and computes each one here straight from the tables with plain
SQL, none of the admin's own code. A page that gains a total without a check here
fails the test (the names must match exactly). The seeded store has what the figures
must leave out or keep apart: deleted annotations, unfinished ones, an annotation of a
failed turn, a span of the turn's trace without its turn id.
"""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from admin.models import Annotation, User
from admin.sample_data import seed
from parley import db
from tests.admin.conftest import totals

LIVE = "a.deleted_at IS NULL"
DONE = f"{LIVE} AND a.done = ?"


def _sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    query = query.replace("?", db.database.obj.param)  # SQLite or PostgreSQL
    return list(db.database.execute_sql(query, params).fetchall())


def _one(query: str, *params: Any) -> int:
    return int(_sql(query, *params)[0][0])


def _prepare() -> str:
    """Seed, then delete some annotations, leave some unfinished, annotate a failed
    turn, and add a trace span without a turn id; return a traced turn's id."""
    with db.database.connection_context():
        seed(300, annotators=4, seed_value=11)
        a = Annotation
        ids = [x.id for x in a.select(a.id).order_by(a.id).limit(40)]
        a.update(deleted_at=db._now()).where(a.id.in_(ids[:6])).execute()
        a.update(done=False).where(a.id.in_(ids[10:14])).execute()
        failed = db.Turn.get(db.Turn.status == "failed")
        a.create(turn=failed.id, user=User.get(name="bob"), pipeline=failed.pipeline, done=True)
        traced = db.Turn.select().where(db.Turn.trace_id != "").first()
        db.Span.create(
            trace_id=traced.trace_id,
            span_id="00000000000000ff",
            name="edge.playback",
            service="parley-edge",
            start_ns=1,
            end_ns=2,
        )
        return str(traced.id)


def _expected(me: str, pipeline_filter: str) -> dict[str, dict[str, int]]:
    pipelines = [p for (p,) in _sql("SELECT DISTINCT pipeline FROM turn ORDER BY pipeline")]
    users = [n for (n,) in _sql("SELECT name FROM admin_user")]
    counted = (
        f"SELECT COUNT(*) FROM admin_annotation a JOIN turn t ON t.id = a.turn_id "
        f"WHERE {DONE} AND t.status = 'done'"
    )
    mine = f"{counted} AND a.user_id = (SELECT id FROM admin_user WHERE name = ?)"
    finished = "SELECT COUNT(*) FROM turn WHERE status = 'done'"
    home = {
        "home.turns": _one("SELECT COUNT(*) FROM turn"),
        "home.conversations": _one("SELECT COUNT(*) FROM conversation"),
        "home.devices": _one("SELECT COUNT(*) FROM device"),
        "home.failed": _one("SELECT COUNT(*) FROM turn WHERE status = 'failed'"),
        "home.annotations": _one(f"SELECT COUNT(*) FROM admin_annotation a WHERE {DONE}", True),
        "home.groups": _one("SELECT COUNT(*) FROM admin_turn_group"),
        "home.mine": _one(mine, True, me),
        "home.finished": _one(finished),
    }
    accuracy: dict[str, int] = {}
    live = f"FROM admin_annotation a WHERE {LIVE}"
    for name, where in [(p, "AND a.pipeline = ?") for p in pipelines] + [("all pipelines", "")]:
        params = (name,) if where else ()
        accuracy[f"accuracy.annotations.{name}"] = _one(f"SELECT COUNT(*) {live} {where}", *params)
        accuracy[f"accuracy.turns.{name}"] = _one(
            f"SELECT COUNT(DISTINCT a.turn_id) {live} {where}", *params
        )
        for score in ("stt_score", "llm_score", "tts_score", "overall_score"):
            accuracy[f"accuracy.rated.{score}.{name}"] = _one(
                f"SELECT COUNT(*) {live} AND a.{score} IS NOT NULL {where}", *params
            )
    accuracy["accuracy.references"] = _one(
        f"SELECT COUNT(*) {live} AND a.transcript_state != 'left' AND a.word_count IS NOT NULL"
    )
    rated = "FROM admin_group_annotation WHERE score IS NOT NULL"
    accuracy["accuracy.groups"] = home["home.groups"]
    accuracy["accuracy.rated_groups"] = _one(f"SELECT COUNT(DISTINCT group_id) {rated}")
    accuracy["accuracy.group_ratings"] = _one(f"SELECT COUNT(*) {rated}")
    progress: dict[str, int] = {}
    for p in pipelines:
        progress[f"progress.mine.{p}"] = _one(f"{mine} AND a.pipeline = ?", True, me, p)
        progress[f"progress.finished.{p}"] = _one(f"{finished} AND pipeline = ?", p)
    for user in users:
        progress[f"progress.annotator.{user}"] = _one(
            f"SELECT COUNT(*) FROM admin_annotation a JOIN admin_user u ON u.id = a.user_id "
            f"WHERE {DONE} AND u.name = ?",
            True,
            user,
        )
        for p in pipelines:
            progress[f"progress.annotator.{user}.{p}"] = _one(
                f"SELECT COUNT(*) FROM admin_annotation a JOIN admin_user u ON u.id = a.user_id "
                f"WHERE {DONE} AND u.name = ? AND a.pipeline = ?",
                True,
                user,
                p,
            )
    per_turn = dict(
        _sql(
            f"SELECT t.id, (SELECT COUNT(*) FROM admin_annotation a WHERE a.turn_id = t.id "
            f"AND {DONE}) FROM turn t WHERE t.status = 'done'",
            True,
        )
    )
    for n in sorted(set(per_turn.values())):
        progress[f"progress.coverage.{n}"] = sum(1 for v in per_turn.values() if v == n)
    unannotated = _one(
        f"SELECT COUNT(*) FROM turn t WHERE t.pipeline = ? AND NOT EXISTS (SELECT 1 FROM "
        f"admin_annotation a WHERE a.turn_id = t.id AND {DONE})",
        pipeline_filter,
        True,
    )
    return {
        "/": home,
        "/turns/": {"turns.total": home["home.turns"]},
        f"/turns/?pipeline={pipeline_filter}&annotated=no": {"turns.total": unannotated},
        "/accuracy/": accuracy,
        "/progress/": progress,
        "/latency/": {"latency.turns": home["home.finished"]},
        "/groups/": {"groups.groups": home["home.groups"]},
        "/queue/": {"queue.done": home["home.mine"], "queue.total": home["home.finished"]},
    }


def _spans(turn_id: str) -> int:
    """The turn's trace: its spans by turn id, and by its trace id."""
    with db.database.connection_context():
        trace_id = db.Turn.get_by_id(turn_id).trace_id
        return _one(
            "SELECT COUNT(*) FROM span WHERE turn_id = ? OR trace_id = ?", turn_id, trace_id
        )


def _with_shown_turn(page: str, figures: dict[str, int]) -> dict[str, int]:
    """A queue page shows a turn: its span count too."""
    shown = re.search(r"Turn <code>([^<]+)</code>", page)
    return {**figures, "turn.spans": _spans(shown.group(1))} if shown else figures


def test_every_total_on_every_page_equals_a_direct_count(admin_client: FlaskClient) -> None:
    traced = _prepare()
    with db.database.connection_context():
        expected = _expected("ada", "local")
    for url, figures in expected.items():
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert totals(page.text) == _with_shown_turn(page.text, figures), url
    # the turn page's span count is the trace page's, and the trace's real size
    spans = _spans(traced)
    assert spans == 7  # the edge's span without a turn id counts too
    assert totals(admin_client.get(f"/turns/{traced}").text) == {"turn.spans": spans}
    assert totals(admin_client.get(f"/traces/{traced}").text) == {"trace.spans": spans}


def test_an_annotators_own_totals_equal_direct_counts(bob: FlaskClient) -> None:
    _prepare()
    with db.database.connection_context():
        expected = _expected("bob", "tiny")
    own = {k: v for k, v in expected["/progress/"].items() if not k.startswith("progress.annot")}
    own |= {
        k: v for k, v in expected["/progress/"].items() if re.match(r"progress.annotator.bob", k)
    }
    assert totals(bob.get("/progress/").text) == own
    assert totals(bob.get("/").text) == expected["/"]
    queue = bob.get("/queue/").text
    assert totals(queue) == _with_shown_turn(queue, expected["/queue/"])
