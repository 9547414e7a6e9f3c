"""The turn list and the turn page show which device sent each turn and how it proved
who it is (a device token, a client certificate, or nothing: marked unverified)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from parley import db
from tests.admin.conftest import add_turn


def _connected(conversation: str, auth: str, peer: str) -> None:
    with db.database.connection_context():
        db.Conversation.update(auth=auth, peer=peer).where(
            db.Conversation.id == conversation
        ).execute()


def _row(page: str, turn_id: str) -> str:
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page, re.S)
    match = next((r for r in rows if f'href="/turns/{turn_id}"' in r), None)
    assert match, turn_id
    return match


def test_the_turn_list_shows_each_turns_device_and_how_it_authenticated(
    admin_client: FlaskClient,
) -> None:
    add_turn("t-kitchen", device="kitchen", conversation="c1")
    add_turn("t-hall", device="hall", conversation="c2")
    add_turn("t-old", device="garage", conversation="c3")  # before auth was recorded
    _connected("c1", "device token", "ipv4:10.0.0.7:51234")
    _connected("c2", "none", "ipv4:127.0.0.1:40000")
    page = admin_client.get("/turns/").text

    kitchen = _row(page, "t-kitchen")
    assert ">kitchen</span>" in kitchen and "unverified" not in kitchen
    assert 'title="authenticated by: device token; from ipv4:10.0.0.7:51234"' in kitchen
    hall = _row(page, "t-hall")
    assert ">hall</span>" in hall and "unverified" in hall
    old = _row(page, "t-old")
    assert ">garage</span>" in old and "not recorded" in old and "unverified" not in old


def test_the_turn_page_names_the_device_and_its_credential(admin_client: FlaskClient) -> None:
    add_turn("t1", device="kitchen", conversation="c1")
    _connected("c1", "device token + mTLS CN=kitchen", "ipv4:10.0.0.7:51234")
    page = admin_client.get("/turns/t1").text
    assert "kitchen</span>" in page
    assert "(device token + mTLS CN=kitchen, from ipv4:10.0.0.7:51234)" in page
