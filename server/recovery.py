"""After an unclean stop (SIGKILL, power loss): end what the dead server left open.

Each server process holds an exclusive ``flock`` on ``<data_dir>/instances/<id>.lock``
while it runs, and tags the conversations it opens with ``<id>``. At start, a server
takes every other instance's lock it can get (the kernel releases a lock when its
process dies, however it died): those servers are gone, so their conversations get
``ended_at`` and their turns still ``running`` become ``aborted``, keeping what they had
(input audio, frames, the row). Servers that are alive keep their locks and are left
alone, so several processes sharing one data directory never abort each other's turns.
Rows from before this scheme (no instance recorded) count as left by a dead server.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from parley import db

log = logging.getLogger(__name__)

INSTANCES_DIR = "instances"
ABORTED_ERROR = "the server stopped before the turn finished (found at the next start)"


@dataclass(frozen=True)
class Recovered:
    turns: int = 0
    conversations: int = 0


class ServerInstance:
    """This process's claim on the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.id = str(uuid.uuid4())
        self.folder = data_dir / INSTANCES_DIR
        self._fd: int | None = None

    @property
    def claimed(self) -> bool:
        return self._fd is not None

    def claim(self) -> None:
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # Read-only descriptors: flock does not need write access, and a data directory
        # with no file open for writing can be remounted read-only.
        fd = os.open(self.folder / f"{self.id}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.folder / f"{self.id}.lock").unlink()
        os.close(self._fd)
        self._fd = None

    def dead_peers(self) -> dict[str, int]:
        """Instances whose process is gone: id -> a descriptor holding their lock
        (close it with :func:`forget` once their rows are recovered)."""
        dead = {}
        for path in self.folder.glob("*.lock"):
            instance = path.stem
            if instance == self.id:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: that server is running
                os.close(fd)
                continue
            dead[instance] = fd
        return dead

    def forget(self, peers: dict[str, int]) -> None:
        for instance, fd in peers.items():
            with contextlib.suppress(OSError):
                (self.folder / f"{instance}.lock").unlink()
            os.close(fd)


def recover(dead_instances: list[str]) -> Recovered:
    """Close the rows of dead server instances ("" = rows from before instances were
    recorded). Runs in one write transaction on the caller's connection."""
    conversations = db.Conversation.select().where(
        db.Conversation.server_instance.in_(dead_instances) & db.Conversation.ended_at.is_null()
    )
    open_ids = [c.id for c in conversations]
    orphan_turns = (
        db.Turn.select(db.Turn.id)
        .join(db.Conversation)
        .where(db.Conversation.server_instance.in_(dead_instances) & (db.Turn.status == "running"))
    )
    turns = (
        db.Turn.update(status="aborted", error=ABORTED_ERROR, error_stage="server")
        .where(db.Turn.id.in_(orphan_turns))
        .execute()
    )
    for conversation_id in open_ids:
        last = (
            db.Turn.select(db.Turn.created_at)
            .where(db.Turn.conversation == conversation_id)
            .order_by(db.Turn.created_at.desc())
            .first()
        )
        started = db.Conversation.get_by_id(conversation_id).started_at
        db.Conversation.update(ended_at=last.created_at if last else started).where(
            db.Conversation.id == conversation_id
        ).execute()
    return Recovered(turns=turns, conversations=len(open_ids))
