"""Persist devices, conversations, turns and their media.

All database and file work runs on one dedicated thread (every public method is an
``@on_store_thread`` coroutine), so the event loop (and the audio path) never waits on
disk, and SQLite sees a single writer. A turn's row is written when the turn starts and
updated when it ends, so a failure at any point still leaves the turn, its input audio
and its error on record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from parley import db
from parley.audio import write_wav

P = ParamSpec("P")
T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def on_store_thread(
    method: Callable[Concatenate[TurnStore, P], T],
) -> Callable[Concatenate[TurnStore, P], Coroutine[Any, Any, T]]:
    """Make a blocking method a coroutine that runs on the store's own thread."""

    @functools.wraps(method)
    async def run(self: TurnStore, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(method, self, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    return run


class TurnStore:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    @on_store_thread
    def open(self) -> None:
        db.open_database(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, db.database.close)
        self._executor.shutdown(wait=True)

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
    ) -> None:
        """``auth``: how the device authenticated; ``peer``: its network address."""
        with db.write_transaction():
            agent_version = db.clip(db.Device.agent_version, agent_version)
            device, created = db.Device.get_or_create(
                id=device_id, defaults={"agent_version": agent_version}
            )
            if not created:
                device.last_seen, device.agent_version = _now(), agent_version
                device.save()
            db.Conversation.create(
                id=conversation_id,
                device=device,
                pipeline=pipeline,
                auth=auth[:160],
                peer=peer[:128],
            )

    @on_store_thread
    def end_conversation(self, conversation_id: str) -> None:
        db.Conversation.update(ended_at=_now()).where(
            db.Conversation.id == conversation_id
        ).execute()

    # ------------------------------------------------------------------ turns

    def _media_path(self, turn_id: str, name: str) -> tuple[Path, str]:
        relative = f"turns/{_now():%Y/%m/%d}/{turn_id}/{name}"
        path = self.data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, relative

    def _save_audio(self, turn_id: str, kind: str, pcm: bytes, rate: int) -> None:
        path, relative = self._media_path(turn_id, f"{kind}.wav")
        write_wav(path, pcm, rate)
        db.Media.create(
            turn=turn_id,
            kind=kind,
            path=relative,
            sample_rate=rate,
            seconds=len(pcm) / 2 / rate,
            bytes=path.stat().st_size,
        )

    def _save_frames(self, turn_id: str, frames: Sequence[tuple[float, bytes]]) -> None:
        """Camera frames seen during the turn (``seconds`` = offset into the turn)."""
        first = frames[0][0] if frames else 0.0
        for index, (captured, jpeg) in enumerate(frames):
            path, relative = self._media_path(turn_id, f"frame-{index:03d}.jpg")
            path.write_bytes(jpeg)
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
    ) -> None:
        """The turn's row, input audio and frames; ``outputs`` as ``Turn.outputs``
        (e.g. the VAD's speech bounds in the input audio)."""
        with db.write_transaction():
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
        with db.write_transaction():
            if stage_outputs:
                row = db.Turn.get_or_none(db.Turn.id == turn_id)
                before = row.outputs if row is not None and row.outputs else {}
                fields["outputs"] = {**before, **stage_outputs}
            db.Turn.update(**fields).where(db.Turn.id == turn_id).execute()
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
