"""Persist devices, conversations, turns and their media.

All database and file work runs on one dedicated thread, so the event loop (and the
audio path) never waits on disk, and SQLite sees a single writer. A turn's row is
written when the turn starts and updated when it ends, so a failure at any point
still leaves the turn, its input audio and its error on record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from parley import db
from parley.audio import write_wav

log = logging.getLogger(__name__)

T = TypeVar("T")


class TurnStore:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def open(self) -> None:
        await self._run(db.open_database, self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        await self._run(db.database.close)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ conversations

    async def start_conversation(
        self, conversation_id: str, device_id: str, pipeline: str, agent_version: str
    ) -> None:
        await self._run(
            self._start_conversation, conversation_id, device_id, pipeline, agent_version
        )

    def _start_conversation(
        self, conversation_id: str, device_id: str, pipeline: str, agent_version: str
    ) -> None:
        with db.database.atomic():
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            device, created = db.Device.get_or_create(
                id=device_id, defaults={"agent_version": agent_version}
            )
            if not created:
                device.last_seen, device.agent_version = now, agent_version
                device.save()
            db.Conversation.create(id=conversation_id, device=device, pipeline=pipeline)

    async def end_conversation(self, conversation_id: str) -> None:
        await self._run(self._end_conversation, conversation_id)

    @staticmethod
    def _end_conversation(conversation_id: str) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        db.Conversation.update(ended_at=now).where(db.Conversation.id == conversation_id).execute()

    # ------------------------------------------------------------------ turns

    async def begin_turn(
        self,
        turn_id: str,
        conversation_id: str,
        position: int,
        pipeline: str,
        pcm: bytes,
        sample_rate: int,
    ) -> None:
        await self._run(
            self._begin_turn, turn_id, conversation_id, position, pipeline, pcm, sample_rate
        )

    def _media_path(self, turn_id: str, name: str) -> tuple[Path, str]:
        day = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
        relative = f"turns/{day}/{turn_id}/{name}"
        return self.data_dir / relative, relative

    def _save_audio(self, turn_id: str, kind: str, pcm: bytes, rate: int) -> None:
        path, relative = self._media_path(turn_id, f"{kind}.wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, pcm, rate)
        db.Media.create(
            turn=turn_id,
            kind=kind,
            path=relative,
            sample_rate=rate,
            seconds=len(pcm) / 2 / rate,
            bytes=path.stat().st_size,
        )

    def _begin_turn(
        self,
        turn_id: str,
        conversation_id: str,
        position: int,
        pipeline: str,
        pcm: bytes,
        sample_rate: int,
    ) -> None:
        with db.database.atomic():
            db.Turn.create(
                id=turn_id,
                conversation=conversation_id,
                position=position,
                pipeline=pipeline,
                speech_seconds=len(pcm) / 2 / sample_rate,
            )
            self._save_audio(turn_id, "input", pcm, sample_rate)

    async def finish_turn(
        self,
        turn_id: str,
        *,
        status: str,
        transcript: str,
        response: str,
        latency: Mapping[str, float],
        error: str = "",
        error_stage: str = "",
        trace_id: str = "",
        answer_pcm: bytes = b"",
        answer_rate: int = 0,
    ) -> None:
        fields = {
            "status": status,
            "transcript": transcript,
            "response": response,
            "latency": dict(latency),
            "error": error,
            "error_stage": error_stage,
            "trace_id": trace_id,
        }
        await self._run(self._finish_turn, turn_id, fields, answer_pcm, answer_rate)

    def _finish_turn(self, turn_id: str, fields: dict[str, Any], pcm: bytes, rate: int) -> None:
        with db.database.atomic():
            db.Turn.update(**fields).where(db.Turn.id == turn_id).execute()
            if pcm:
                self._save_audio(turn_id, "output", pcm, rate)

    async def update_latency(self, turn_id: str, values: Mapping[str, float]) -> None:
        """Merge late figures (e.g. voice-to-voice reported by the edge) into a turn."""
        await self._run(self._update_latency, turn_id, dict(values))

    @staticmethod
    def _update_latency(turn_id: str, values: dict[str, float]) -> None:
        with db.database.atomic():
            turn = db.Turn.get_or_none(db.Turn.id == turn_id)
            if turn is not None:
                turn.latency = {**(turn.latency or {}), **values}
                turn.save(only=[db.Turn.latency])
