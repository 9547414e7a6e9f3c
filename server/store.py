"""Persist devices, conversations, turns and their media.

All database and file work runs on one dedicated thread (every public method is an
``@on_store_thread`` coroutine), so the event loop (and the audio path) never waits on
disk, and SQLite sees a single writer. A turn's row is written when the turn starts and
updated when it ends, so a failure at any point still leaves the turn, its input audio
and its error on record.

A write that fails raises :class:`~server.store_failures.StoreFailure` saying why
(database locked, disk full, read-only, error); a locked database is retried for
``write_retry_s`` seconds first. Media files are written atomically
(:mod:`server.media`), and a server killed mid-turn has its rows closed at the next
start (:mod:`server.recovery`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from parley import db
from server.media import MediaWriter
from server.recovery import Recovered, ServerInstance, recover
from server.store_failures import retrying

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def on_store_thread(
    method: Callable[Concatenate[TurnStore, P], T],
) -> Callable[Concatenate[TurnStore, P], Coroutine[Any, Any, T]]:
    """Make a blocking method a coroutine that runs on the store's own thread, retried
    while the database is locked (StoreFailure when it cannot be done)."""

    @functools.wraps(method)
    async def run(self: TurnStore, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(method, self, *args, **kwargs)
        operation = method.__name__.replace("_", " ")
        if args and isinstance(args[0], str):  # the turn's or conversation's id
            operation += f" {args[0]}"
        return await retrying(
            operation,
            lambda: loop.run_in_executor(self._executor, call),
            self.write_retry_s,
        )

    return run


class TurnStore:
    def __init__(self, database_url: str, data_dir: Path, *, write_retry_s: float = 10.0) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.write_retry_s = write_retry_s
        self.media = MediaWriter(data_dir)
        self.instance = ServerInstance(data_dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    @on_store_thread
    def open(self) -> Recovered:
        """Open the database and data directory; close what a dead server left open."""
        db.open_database(self.database_url)
        self.media.open()
        self.instance.claim()
        peers = self.instance.dead_peers()
        with db.write_transaction():
            recovered = recover(["", *peers])
        self.instance.forget(peers)
        if recovered.turns or recovered.conversations:
            log.warning(
                "recovered after an unclean stop: %d running turn(s) marked aborted, "
                "%d conversation(s) ended",
                recovered.turns,
                recovered.conversations,
            )
        return recovered

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, db.database.close)
        self._executor.shutdown(wait=True)
        self.instance.release()

    async def query(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)``, a read of the store, on the store's thread (its one
        connection; no thread per caller). Its exceptions are the caller's to handle."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    # ------------------------------------------------------------------ conversations

    @on_store_thread
    def start_conversation(
        self,
        conversation_id: str,
        device_id: str,
        pipeline: str,
        agent_version: str,
        *,
        auth: str = "",
        peer: str = "",
    ) -> tuple[str, int]:
        """Record the stream (``auth``: how the device authenticated; ``peer``: its
        network address); returns the device's stored (audio epoch, next seq)."""
        with db.write_transaction():
            agent_version = db.clip(db.Device.agent_version, agent_version)
            device, created = db.Device.get_or_create(
                id=device_id, defaults={"agent_version": agent_version}
            )
            if not created:
                device.last_seen, device.agent_version = _now(), agent_version
                device.save(only=[db.Device.last_seen, db.Device.agent_version])
            db.Conversation.create(
                id=conversation_id,
                device=device,
                pipeline=pipeline,
                auth=auth[:160],
                peer=peer[:128],
                server_instance=self.instance.id,
            )
        return device.audio_epoch, device.audio_next_seq

    @on_store_thread
    def end_conversation(self, conversation_id: str) -> None:
        db.Conversation.update(ended_at=_now()).where(
            db.Conversation.id == conversation_id
        ).execute()

    @on_store_thread
    def discard_conversation(self, conversation_id: str) -> bool:
        """Delete the conversation if it has no turn (a stream that only said Hello,
        e.g. ``parley edge --dry-run``); True if it was deleted. A conversation with
        a turn is never deleted here: it is ended instead."""
        with db.write_transaction():
            has_turns = db.Turn.select().where(db.Turn.conversation == conversation_id).exists()
            if has_turns:
                db.Conversation.update(ended_at=_now()).where(
                    db.Conversation.id == conversation_id
                ).execute()
                return False
            db.Conversation.delete().where(db.Conversation.id == conversation_id).execute()
        return True

    # ------------------------------------------------------------------ turns

    def _media_path(self, turn_id: str, name: str) -> str:
        return f"turns/{_now():%Y/%m/%d}/{turn_id}/{name}"

    def _save_audio(self, turn_id: str, kind: str, pcm: bytes, rate: int) -> None:
        relative = self._media_path(turn_id, f"{kind}.wav")
        size = self.media.write_wav(relative, pcm, rate)
        db.Media.create(
            turn=turn_id,
            kind=kind,
            path=relative,
            sample_rate=rate,
            seconds=len(pcm) / 2 / rate,
            bytes=size,
        )

    def _save_frames(self, turn_id: str, frames: Sequence[tuple[float, bytes]]) -> None:
        """Camera frames seen during the turn (``seconds`` = offset into the turn)."""
        first = frames[0][0] if frames else 0.0
        for index, (captured, jpeg) in enumerate(frames):
            relative = self._media_path(turn_id, f"frame-{index:03d}.jpg")
            self.media.write_bytes(relative, jpeg)
            db.Media.create(
                turn=turn_id,
                kind="frame",
                path=relative,
                mime="image/jpeg",
                seconds=captured - first,
                bytes=len(jpeg),
            )

    @on_store_thread
    def begin_turn(
        self,
        turn_id: str,
        conversation_id: str,
        position: int,
        pipeline: str,
        pcm: bytes,
        sample_rate: int,
        frames: Sequence[tuple[float, bytes]] = (),
        outputs: Mapping[str, Any] | None = None,
        audio_taken: tuple[str, str, int] | None = None,
    ) -> None:
        """The turn's row, input audio and frames; ``outputs`` as ``Turn.outputs``
        (e.g. the VAD's speech bounds in the input audio). ``audio_taken``: (device,
        epoch, next seq) acknowledged once this is stored, recorded in the same
        transaction (see server/delivery.py)."""
        with self.media.batch(), db.write_transaction():
            db.Turn.create(
                id=turn_id,
                conversation=conversation_id,
                position=position,
                pipeline=pipeline,
                speech_seconds=len(pcm) / 2 / sample_rate,
                outputs=dict(outputs or {}),
            )
            self._save_audio(turn_id, "input", pcm, sample_rate)
            self._save_frames(turn_id, frames)
            if audio_taken is not None and audio_taken[1]:
                device, epoch, next_seq = audio_taken
                db.Device.update(audio_epoch=epoch, audio_next_seq=next_seq).where(
                    (db.Device.id == device)
                    & ((db.Device.audio_epoch != epoch) | (db.Device.audio_next_seq < next_seq))
                ).execute()

    @on_store_thread
    def finish_turn(
        self,
        turn_id: str,
        *,
        status: str,
        transcript: str,
        response: str,
        latency: Mapping[str, float],
        reasoning: str = "",
        spoken: Sequence[str] = (),
        error: str = "",
        error_stage: str = "",
        trace_id: str = "",
        answer_pcm: bytes = b"",
        answer_rate: int = 0,
        stage_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``stage_outputs``: the context stages' results by stage name, each
        ``{"kind", "status", "error", ...value}`` (StageOutput.as_output), merged into
        ``Turn.outputs`` beside what the turn stored when it began (the VAD's bounds)."""
        fields: dict[str, Any] = {
            "status": status,
            "transcript": transcript,
            "response": response,
            "reasoning": reasoning,
            "spoken": list(spoken),
            "latency": dict(latency),
            "error": error,
            "error_stage": error_stage,
            "trace_id": trace_id,
        }
        with self.media.batch(), db.write_transaction():
            if stage_outputs:
                row = db.Turn.get_or_none(db.Turn.id == turn_id)
                before = row.outputs if row is not None and row.outputs else {}
                fields["outputs"] = {**before, **stage_outputs}
            if not db.Turn.update(**fields).where(db.Turn.id == turn_id).execute():
                raise LookupError(f"turn {turn_id} has no row (its start was not stored)")
            if answer_pcm:
                self._save_audio(turn_id, "output", answer_pcm, answer_rate)

    @on_store_thread
    def update_latency(self, turn_id: str, values: Mapping[str, float]) -> None:
        """Merge late figures (e.g. voice-to-voice reported by the edge) into a turn."""
        with db.write_transaction():
            turn = db.Turn.get_or_none(db.Turn.id == turn_id)
            if turn is not None:
                turn.latency = {**(turn.latency or {}), **values}
                turn.save(only=[db.Turn.latency])
