"""The Compare page: runs of one dataset side by side (research/compare.py), and the
blind A/B preferences annotators gave between them.

``/compare/?run=A&run=B[&run=C...][&tag=T][&page=N]``: the first run is the baseline.
Without two runs it shows the runs to choose from. Blind rating: annotators see it only
when an admin lets them see results (admin/settings.py).
"""

from __future__ import annotations

import math
from typing import Any

from flask import jsonify, request, url_for
from flask_admin import expose

from admin import auth, compare_page, settings
from admin.models import User
from admin.views.base import SiteView, page_number
from research.compare import CompareError, compare

TAG_LIMIT = 200


def _asked() -> tuple[list[str], str]:
    refs = [r.strip()[:300] for r in request.args.getlist("run") if r.strip()]
    return refs[: compare_page.MAX_RUNS + 1], request.args.get("tag", "").strip()[:TAG_LIMIT]


def _problem(refs: list[str]) -> str:
    if len(refs) > compare_page.MAX_RUNS:
        return f"Compare at most {compare_page.MAX_RUNS} runs at once."
    if len(refs) == 1:
        return "Choose at least two runs of one dataset (the first is the baseline)."
    return ""


def _figures(refs: list[str], tag: str, page: int) -> dict[str, Any]:
    """compare() for one page of item rows (CompareError: a message for the reader)."""
    offset = (page - 1) * compare_page.PAGE_ROWS
    # The page's own links and check boxes carry run ids: digits here are an id, never
    # a run that happens to be named with digits (names still work).
    ids: list[str | int] = [
        int(r) if r.isascii() and r.isdecimal() and len(r) <= 9 else r for r in refs
    ]
    return compare(ids, tag=tag, item_offset=offset, item_limit=compare_page.PAGE_ROWS)


def _tag(tag: str) -> dict[str, str]:
    return {"tag": tag} if tag else {}


def _first(ids: list[str], run_id: str, tag: str) -> dict[str, Any]:
    """The page's arguments with ``run_id`` first (the baseline)."""
    return {"run": [run_id] + [i for i in ids if i != run_id], **_tag(tag)}


class CompareView(SiteView):
    @expose("/")
    def index(self) -> Any:
        me = auth.user()
        if not settings.sees_results(me):
            return self.render("parley/blind.html")
        refs, tag = _asked()
        problem = _problem(refs)
        if refs and not problem:
            page = page_number()
            try:
                result = _figures(refs, tag, page)
            except CompareError as exc:
                problem = f"{str(exc)[:1].upper()}{str(exc)[1:]}."
            else:
                pages = max(1, math.ceil(result["items_total"] / compare_page.PAGE_ROWS))
                if page > pages:  # past the end: the last page
                    page, result = pages, _figures(refs, tag, pages)
                return self._page(me, refs, tag, page, pages, result)
        status = 400 if problem else 200
        return self.render(
            "parley/compare.html",
            choices=compare_page.choices(),
            chosen=refs,
            tag=tag,
            problem=problem,
            result=None,
        ), status

    def _page(
        self, me: User, refs: list[str], tag: str, page: int, pages: int, result: dict[str, Any]
    ) -> Any:
        ids = [str(r["id"]) for r in result["runs"]]
        return self.render(
            "parley/compare.html",
            choices=compare_page.choices(),
            chosen=ids,
            tag=tag,
            problem="",
            result=result,
            summary={s["run"]: s for s in result["summary"]},
            warnings=compare_page.warnings(result),
            latency_rows=compare_page.latency_rows(result["summary"]),
            charts=compare_page.charts(result),
            paired=compare_page.paired_by_run(result["paired"]),
            paired_labels=compare_page.PAIRED,
            scores=compare_page.SCORES,
            audio=compare_page.answer_audio(result["items"]),
            page=page,
            pages=pages,
            args={"run": ids, **_tag(tag)},
            baseline_links={
                r["name"]: url_for(".index", **_first(ids, str(r["id"]), tag))
                for r in result["runs"][1:]
            },
            annotators=list(User.select().where(User.active == True).order_by(User.name))  # noqa: E712
            if me.is_admin
            else [],
            show_results=settings.get(settings.SHOW_RESULTS),
        )

    @expose("/data.json")
    def data_json(self) -> Any:
        """The page's figures as research/compare.py returns them (this page's items)."""
        me = auth.user()
        if not settings.sees_results(me):
            return jsonify(
                {"error": "blind rating: an admin has not let annotators see results"}
            ), 403
        refs, tag = _asked()
        problem = _problem(refs) or ("" if refs else "name the runs: ?run=A&run=B")
        if problem:
            return jsonify({"error": problem}), 400
        try:
            return jsonify(_figures(refs, tag, page_number()))
        except CompareError as exc:
            return jsonify({"error": str(exc)}), 400
