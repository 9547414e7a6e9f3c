"""What a killed server left open is closed at the next start, and only that: a
server that is still running keeps its turns."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from parley import db
from server.recovery import ABORTED_ERROR, ServerInstance
from server.store import TurnStore


def _conversation(instance: str, turn_status: str = "running") -> str:
    conversation_id = f"c-{instance or 'legacy'}"
    device, _ = db.Device.get_or_create(id="pi")
    db.Conversation.create(
        id=conversation_id, device=device, pipeline="tiny", server_instance=instance
    )
    db.Turn.create(
        id=f"t-{instance or 'legacy'}",
        conversation=conversation_id,
        position=0,
        pipeline="tiny",
        status=turn_status,
        created_at=dt.datetime(2026, 1, 1, 12, 0),
    )
    return conversation_id


def _claim_and_die(data: Path) -> str:
    """A server process that claims its instance and dies without a word."""
    claim = "import sys; from pathlib import Path; from server.recovery import ServerInstance; "
    claim += "i = ServerInstance(Path(sys.argv[1])); i.claim(); print(i.id)"
    done = subprocess.run(
        [sys.executable, "-c", claim, str(data)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def test_a_dead_servers_turns_are_aborted_and_a_live_servers_are_left(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'parley.db'}"
    data = tmp_path / "data"
    live = ServerInstance(data)
    live.claim()  # a server that is still running
    dead_id = _claim_and_die(data)
    db.open_database(url)
    with db.database.connection_context():
        _conversation(dead_id)
        _conversation(live.id)
        _conversation("")  # from before instances were recorded
    store = TurnStore(url, data)
    recovered = await store.open()
    try:
        assert (recovered.turns, recovered.conversations) == (2, 2)
        with db.database.connection_context():
            assert db.Turn.get_by_id(f"t-{dead_id}").status == "aborted"
            assert db.Turn.get_by_id(f"t-{dead_id}").error == ABORTED_ERROR
            assert db.Turn.get_by_id("t-legacy").status == "aborted"
            assert db.Turn.get_by_id(f"t-{live.id}").status == "running"
            ended = db.Conversation.get_by_id(f"c-{dead_id}").ended_at
            assert ended == dt.datetime(2026, 1, 1, 12, 0)  # its last turn, not now
            assert db.Conversation.get_by_id(f"c-{live.id}").ended_at is None
        assert not (data / "instances" / f"{dead_id}.lock").exists()
        assert (data / "instances" / f"{live.id}.lock").exists()
    finally:
        await store.close()
        live.release()
    assert not (data / "instances" / f"{store.instance.id}.lock").exists()
