"""The Compare page, the blind pairwise (A/B) queue and the run/dataset filters on a store
of replay runs whose figures are worked out by hand (tests/admin/compare_store.py), on
SQLite and PostgreSQL; bad ids and bad form input get 4xx, never a server error."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import pairwise, settings
from admin.models import (
    ADMIN_MIGRATIONS,
    ADMIN_MODELS,
    Annotation,
    Preference,
    Queue,
    User,
    create_admin_tables,
)
from parley import db, migrations
from parley.config import Config
from tests.admin.compare_store import RUNS, V2V, WER, WORD, Seeded, answer, seed
from tests.admin.conftest import post, user_id

TOTAL = re.compile(r'data-total="([^"]+)"[^>]*>([^<]*)<')


def table(html: str, table_id: str) -> str:
    found = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert found is not None, table_id
    return found.group(0)


def totals(html: str) -> dict[str, str]:
    """``{data-total name: text}`` of a page."""
    return {name: text.strip() for name, text in TOTAL.findall(html)}


@pytest.fixture
def store(app: Flask, config: Config) -> Seeded:
    return seed(config.data_dir)


def compare_url(seeded: Seeded, *names: str, **extra: str) -> str:
    runs = "&".join(f"run={seeded.runs[n]}" for n in names)
    more = "".join(f"&{k}={v}" for k, v in extra.items())
    return f"/compare/?{runs}{more}"


def test_compare_page_totals_match_hand_computed_figures(
    admin_client: FlaskClient, store: Seeded
) -> None:
    names = list(RUNS)
    page = admin_client.get(compare_url(store, *names))
    assert page.status_code == 200, page.text[:500]
    shown = totals(page.text)
    assert shown["compare.items"] == "4"
    expected = {"run-local": (4, 0, 3), "run-cloud": (4, 0, 3), "run-edge": (3, 1, 2)}
    for name, (done, failed, references) in expected.items():
        assert shown[f"compare.done.{name}"] == str(done)
        assert shown[f"compare.failed.{name}"] == str(failed)
        assert shown[f"compare.references.{name}"] == str(references)
        row = re.search(rf'<tr data-run="{name}">.*?</tr>', table(page.text, "compare-runs"), re.S)
        assert row is not None
        wer = re.search(r'data-metric="wer">([^<]+)<', row.group(0))
        assert wer is not None and wer.group(1) == f"{100 * WER[name]:.1f} %"

    figures = admin_client.get(compare_url(store, *names).replace("/?", "/data.json?")).json
    for summary in figures["summary"]:
        assert summary["wer"] == pytest.approx(WER[summary["run"]], abs=1e-6)
        v2v = summary["latency"]["voice_to_voice_ms"]
        assert (v2v["p50"], v2v["p90"]) == V2V[summary["run"]]
    # the latency table shows the same percentiles, run by run
    row = re.search(r'data-metric="voice_to_voice_ms"><th>.*?</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num"[^>]*>([^<]+)</td>', row.group(0))
    assert [cells[i] for i in (0, 1, 3, 4, 6, 7)] == [
        f"{v:,.1f}" for name in names for v in V2V[name]
    ]

    # one row per recording, one cell per run: the right pairs, links and audio
    for key in ("lamp", "timer", "hall", "song"):
        row = re.search(rf'<tr data-item="{key}">.*?</tr>', page.text, re.S)
        assert row is not None, key
        for name in names:
            cell = re.search(
                rf'data-run="{name}" data-status="(\w+)">(.*?)</td>', row.group(0), re.S
            )
            assert cell is not None, (key, name)
            turn = store.turns[(name, key)]
            if name == "run-edge" and key == "lamp":
                assert cell.group(1) == "failed" and "llm: boom" in cell.group(2)
                continue
            assert cell.group(1) == "done"
            assert answer(name, key) in cell.group(2)
            assert f'href="/turns/{turn}"' in cell.group(2)
            assert f'href="/traces/{turn}"' in cell.group(2)
            assert f'src="/media/turns/{turn}/output.wav"' in cell.group(2)
    timer = re.search(r'<tr data-item="timer">.*?</tr>', page.text, re.S)
    assert timer is not None and "set timer for ten minutes" in timer.group(0)
    # an answer's audio plays from the link the page gives
    audio = admin_client.get(f"/media/turns/{store.turns[('run-cloud', 'song')]}/output.wav")
    assert audio.status_code == 200 and audio.data[:4] == b"RIFF"


def test_the_tag_filter_keeps_the_tagged_items_and_their_figures(
    admin_client: FlaskClient, store: Seeded
) -> None:
    page = admin_client.get(compare_url(store, "run-local", "run-cloud", tag="lights"))
    assert page.status_code == 200
    assert totals(page.text)["compare.items"] == "2"
    assert re.findall(r'<tr data-item="(\w+)">', page.text) == ["lamp", "hall"]
    cloud = re.search(r'<tr data-run="run-cloud">.*?</tr>', table(page.text, "compare-runs"), re.S)
    assert cloud is not None and 'data-metric="wer">22.2 %<' in cloud.group(0)  # (1 + 1) / 9


def test_compare_page_bad_input_gets_4xx(
    admin_client: FlaskClient, store: Seeded, config: Config
) -> None:
    assert admin_client.get("/compare/").status_code == 200  # the chooser
    one = admin_client.get(compare_url(store, "run-local"))
    assert one.status_code == 400 and "at least two runs" in one.text
    unknown = admin_client.get(f"/compare/?run={store.runs['run-local']}&run=99999")
    assert unknown.status_code == 400 and "unknown run" in unknown.text.lower()
    twice = admin_client.get(compare_url(store, "run-local", "run-local"))
    assert twice.status_code == 400
    assert (
        admin_client.get(compare_url(store, "run-local", "run-cloud", page="x")).status_code == 200
    )
    past = admin_client.get(compare_url(store, "run-local", "run-cloud", page="999"))
    assert past.status_code == 200 and "page 1 of 1" in past.text
    bad_json = admin_client.get("/compare/data.json?run=a%00b&run=2")
    assert bad_json.status_code == 400 and "error" in bad_json.json
    with db.database.connection_context():  # a run of another dataset does not pair up
        other = db.Dataset.create(name="garden")
        db.Run.create(name="run-garden", dataset=other, pipeline="local")
    mixed = admin_client.get(f"/compare/?run={store.runs['run-local']}&run=run-garden")
    assert mixed.status_code == 400


def test_annotators_see_the_compare_page_only_when_results_are_shown(
    bob: FlaskClient, store: Seeded
) -> None:
    url = compare_url(store, "run-local", "run-cloud")
    assert 'id="blind"' in bob.get(url).text
    assert bob.get(url.replace("/?", "/data.json?")).status_code == 403
    with db.database.connection_context():
        settings.put(settings.SHOW_RESULTS, True)
    assert 'id="compare-items"' in bob.get(url).text


def make_pair_queue(admin: FlaskClient, seeded: Seeded, a: str, b: str, **extra: str) -> int:
    """A pairwise queue of runs a and b for bob (named without naming the runs: its
    name is shown to the annotators)."""
    name = f"pair {seeded.runs[a]}-{seeded.runs[b]}"
    response = post(
        admin,
        "/queues/new",
        {
            "kind": "pairwise",
            "name": name,
            "run_a": str(seeded.runs[a]),
            "run_b": str(seeded.runs[b]),
            "target": "1",
            "assignee": str(user_id("bob")),
            **extra,
        },
    )
    assert response.status_code == 302
    with db.database.connection_context():
        found = Queue.get_or_none(Queue.name == name)
    assert found is not None, "no queue made"
    return int(found.id)


def sides(html: str) -> dict[str, str]:
    """``{"A": run name, "B": run name}`` worked out from the answers' texts."""
    out = {}
    for side, text in re.findall(r'data-answer="([AB])">([^<]*)<', html):
        out[side] = next(run for run, word in WORD.items() if text.startswith(word))
    return out


def test_the_pairwise_queue_is_blind_and_maps_preferences_to_runs(
    admin_client: FlaskClient, bob: FlaskClient, store: Seeded
) -> None:
    queue_id = make_pair_queue(admin_client, store, "run-cloud", "run-local")
    wanted = {"lamp": "run-local", "timer": "run-local", "hall": "tie", "song": "run-cloud"}
    seen_sides = []
    for _ in range(4):
        page = bob.get(f"/queue/{queue_id}/")
        assert page.status_code == 200 and "Which answer is better?" in page.text
        hidden = ["run-local", "run-cloud", "local", "cloud", *store.turns.values()]
        hidden += [hashlib.md5(t.encode()).hexdigest() for t in store.turns.values()]  # traces
        for text in hidden:
            assert text not in page.text, text
        item = re.search(r'id="pairwise" data-item="(\d+)"', page.text)
        assert item is not None
        key = next(k for k, i in store.items.items() if i == int(item.group(1)))
        shown = sides(page.text)
        seen_sides.append(shown["A"])
        for side in ("A", "B", "request"):
            audio = bob.get(f"/queue/{queue_id}/pair/{item.group(1)}/{side}")
            assert audio.status_code == 200 and audio.data[:4] == b"RIFF", side
        choice = "tie" if wanted[key] == "tie" else ("A" if shown["A"] == wanted[key] else "B")
        saved = post(bob, f"/queue/{queue_id}/pair/{item.group(1)}", {"choice": choice})
        assert saved.status_code == 302
    with db.database.connection_context():  # every item judged: the queue is done for bob
        q = Queue.get_by_id(queue_id)
        assert pairwise.progress(q, User.get(User.name == "bob")).done == 4
        assert pairwise.next_item(q, User.get(User.name == "bob"), "") is None
    with db.database.connection_context():
        rows = list(Preference.select())
        local, cloud = store.runs["run-local"], store.runs["run-cloud"]
        assert {(p.run_a_id, p.run_b_id) for p in rows} == {(min(local, cloud), max(local, cloud))}
        by_key = {i: k for k, i in store.items.items()}
        run_a = "run-local" if local < cloud else "run-cloud"
        for p in rows:
            want = wanted[by_key[p.item_id]]
            assert p.choice == ("tie" if want == "tie" else ("a" if want == run_a else "b"))
        assert len(rows) == 4
    # the Compare page counts them, in the order the runs are given
    shown = totals(admin_client.get(compare_url(store, "run-local", "run-cloud")).text)
    assert shown["compare.preferences.run-local.run-cloud"] == "4"
    assert shown["compare.prefer_a.run-local.run-cloud"] == "2"
    assert shown["compare.prefer_tie.run-local.run-cloud"] == "1"
    assert shown["compare.prefer_b.run-local.run-cloud"] == "1"
    flipped = totals(admin_client.get(compare_url(store, "run-cloud", "run-local")).text)
    assert flipped["compare.prefer_a.run-cloud.run-local"] == "1"
    assert flipped["compare.prefer_b.run-cloud.run-local"] == "2"


def test_answering_again_changes_the_preference(
    admin_client: FlaskClient, bob: FlaskClient, store: Seeded
) -> None:
    queue_id = make_pair_queue(admin_client, store, "run-local", "run-cloud")
    item = store.items["song"]
    assert post(bob, f"/queue/{queue_id}/pair/{item}", {"choice": "A"}).status_code == 302
    assert post(bob, f"/queue/{queue_id}/pair/{item}", {"choice": "tie"}).status_code == 302
    with db.database.connection_context():
        assert [p.choice for p in Preference.select()] == ["tie"]


def test_pairwise_bad_ids_and_bad_input_get_4xx(
    admin_client: FlaskClient, bob: FlaskClient, cy: FlaskClient, store: Seeded
) -> None:
    queue_id = make_pair_queue(admin_client, store, "run-local", "run-edge")
    lamp, song = store.items["lamp"], store.items["song"]
    base = f"/queue/{queue_id}/pair"
    # lamp failed in run-edge: not an item of this pair
    assert post(bob, f"{base}/{lamp}", {"choice": "A"}).status_code == 404
    assert bob.get(f"{base}/{lamp}/A").status_code == 404
    assert post(bob, f"{base}/99999", {"choice": "A"}).status_code == 404
    assert bob.get(f"{base}/{song}/C").status_code == 404
    assert post(bob, f"/queue/99999/pair/{song}", {"choice": "A"}).status_code == 404
    assert post(cy, f"{base}/{song}", {"choice": "A"}).status_code in (403, 404)  # not assigned
    refused = post(bob, f"{base}/{song}", {"choice": "C"})
    assert refused.status_code == 400 and "choose A, B or tie" in refused.text
    assert post(bob, f"{base}/{song}", {}).status_code == 400
    with db.database.connection_context():
        assert Preference.select().count() == 0
        turns_queue = Queue.create(name="plain", filters={}, target=1)
    assert (
        post(admin_client, f"/queue/{turns_queue.id}/pair/{song}", {"choice": "A"}).status_code
        == 404
    )

    # queues that cannot be made: the same run twice, an unknown run, other datasets
    with db.database.connection_context():
        other = db.Dataset.create(name="garden")
        garden = db.Run.create(name="run-garden", dataset=other, pipeline="local")
    for run_a, run_b, message in (
        (store.runs["run-local"], store.runs["run-local"], "two different runs"),
        (store.runs["run-local"], 99999, "unknown run id 99999"),
        (store.runs["run-local"], garden.id, "different datasets"),
        (store.runs["run-local"], "x\x00", "two different runs"),
    ):
        form = {"kind": "pairwise", "name": f"bad {message}", "target": 1}
        form |= {"run_a": run_a, "run_b": run_b}
        response = post(admin_client, "/queues/new", form)
        assert response.status_code == 302
        assert message in admin_client.get("/queues/").text
        with db.database.connection_context():
            assert not Queue.select().where(Queue.name == f"bad {message}").exists()


def test_the_order_is_random_per_item_and_annotator_and_stable(
    admin_client: FlaskClient, store: Seeded
) -> None:
    queue_id = make_pair_queue(admin_client, store, "run-local", "run-cloud")
    with db.database.connection_context():
        pair = pairwise.pair_of(Queue.get_by_id(queue_id))
    assert pair is not None
    orders = Counter(pairwise.swapped("secret", 1, pair, item) for item in range(1000))
    assert 430 < orders[True] < 570  # about half: a fair coin per item
    per_user = [pairwise.swapped("secret", user, pair, 7) for user in range(200)]
    assert 0 < sum(per_user) < 200  # and per annotator
    assert pairwise.swapped("secret", 1, pair, 7) == pairwise.swapped("secret", 1, pair, 7)


def test_latency_and_accuracy_pages_filter_by_run_and_dataset(
    admin_client: FlaskClient, store: Seeded
) -> None:
    def latency_turns(**args: object) -> int:
        query = "&".join(f"{k}={v}" for k, v in args.items())
        return int(admin_client.get(f"/latency/summary.json?{query}").json["turns"])

    assert latency_turns(run=store.runs["run-local"]) == 4
    assert latency_turns(run=store.runs["run-edge"]) == 3  # finished turns only
    assert latency_turns(run=store.runs["run-edge"], status="all") == 4
    assert latency_turns(dataset=store.dataset) == 11
    page = admin_client.get(f"/latency/?run={store.runs['run-cloud']}")
    assert page.status_code == 200 and 'name="run"' in page.text

    with db.database.connection_context():
        ada = User.get(User.name == "ada")
        for name, score in (("run-local", 5), ("run-cloud", 2)):
            turn = store.turns[(name, "lamp")]
            Annotation.create(turn=turn, user=ada, pipeline=RUNS[name][0], overall_score=score)

    def annotations(**args: object) -> dict[str, int]:
        query = "&".join(f"{k}={v}" for k, v in args.items())
        found = admin_client.get(f"/accuracy/summary.json?{query}").json["pipelines"]
        return {name: figures["annotations"] for name, figures in found.items()}

    assert annotations(run=store.runs["run-local"]) == {"local": 1}
    assert annotations(run=store.runs["run-edge"]) == {}
    assert sum(annotations(dataset=store.dataset).get(p, 0) for p in ("local", "cloud")) == 2
    assert admin_client.get(f"/accuracy/?run={store.runs['run-cloud']}").status_code == 200


def test_an_existing_database_gains_the_preference_table(tmp_path: Path, database_url: str) -> None:
    """A database upgraded up to the step before ours, without admin_preference."""
    database = db.connect_database(database_url)
    migrations.upgrade(database, db.MODELS, migrations.STORE_MIGRATIONS)
    before = [m for m in ADMIN_MIGRATIONS if m.name != "admin-i12-preferences"]
    older = [m for m in ADMIN_MODELS if m is not Preference]
    with database.connection_context():
        database.drop_tables([Preference], safe=True)
        database.execute_sql("DELETE FROM schema_migration WHERE name = 'admin-i12-preferences'")
    migrations.upgrade(database, older, before)
    with database.connection_context():
        assert not database.table_exists("admin_preference")
    db.database.initialize(database)
    create_admin_tables()
    with database.connection_context():
        assert database.table_exists("admin_preference")
        indexed = {tuple(i.columns) for i in database.get_indexes("admin_preference")}
        assert ("run_a_id", "run_b_id", "item_id", "user_id") in indexed
    assert "admin-i12-preferences" in migrations.applied(database)
    assert migrations.pending(database, ADMIN_MIGRATIONS) == []
    db.database.close()
