"""Replay a dataset through pipelines over the real Converse path.

Each replay unit (a single item, or a multi-turn conversation's items in order) is
spoken by a headless edge (edge/scripted.py) on its own Converse stream, so every item
starts with an empty history and a conversation's later items hear the pipeline's own
earlier answers. Units run in dataset order, interleaved across the runs (item 1 through
every pipeline, then item 2, ...) so that slow periods of the machine hit every pipeline
alike; ``concurrency`` streams at a time.

The server stores each turn as usual; this side links it to its item and run
(research/runs.py) once the stream has ended (when every write of the session has
landed). A unit that fails is recorded with its error and the replay goes on; a
server that refuses the stream (unknown pipeline, bad token) or stores into another
database stops it, since every later unit would fail the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edge.scripted import Conversation, ScriptedEdge, Utterance
from parley import db
from parley.audio import AudioConverter, float_to_pcm16, read_audio
from parley.config import EdgeConfig
from parley.errors import ParleyError
from research import datasets, runs

T = TypeVar("T")
MAX_ERRORS = 5  # failed items listed per run in the tally
Progress = Callable[[db.Run, Sequence[str]], None]  # a unit's item statuses, as recorded


class ReplayRefused(ParleyError):
    """The server would not take the replay's streams at all."""


@dataclass(frozen=True)
class ReplayOptions:
    fast: bool = False  # stream without real-time pacing (no voice-to-voice figures)
    concurrency: int = 1  # streams at a time
    answer_timeout_s: float = 120.0  # per item, on top of its duration
    trailing_silence_s: float = 1.5  # after each recording, so endpointing can close it
    device_id: str = "parley-replay"


@dataclass
class RunTally:
    run: str
    pipeline: str
    skipped: int = 0  # already done before this replay
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, "item key: error"


def pending_work(
    dataset: db.Dataset, run_rows: Sequence[db.Run]
) -> tuple[list[tuple[list[db.DatasetItem], db.Run]], dict[int, int]]:
    """``([(unit, run) still to replay], {run id: items already done})``: a unit is
    replayed again unless every one of its items is done in that run."""
    units = datasets.units(datasets.items(dataset))
    done = {run.id: runs.done_items(run) for run in run_rows}
    work = [
        (unit, run)
        for unit in units
        for run in run_rows
        if not all(item.id in done[run.id] for item in unit)
    ]
    return work, {run_id: len(items) for run_id, items in done.items()}


def _load(item: db.DatasetItem, data_dir: Path) -> Utterance:
    samples, rate = read_audio(data_dir / item.audio_path)
    frames = [(f["offset_s"], (data_dir / f["path"]).read_bytes()) for f in item.frames]
    return Utterance(samples, rate, frames)


def _mono16k(utterance: Utterance) -> Utterance:
    converter = AudioConverter(utterance.rate, utterance.channels)
    mono = np.concatenate([converter.convert(utterance.samples.tobytes()), converter.flush()])
    return Utterance(float_to_pcm16(mono), 16000, utterance.frames)


def load_unit(unit: Sequence[db.DatasetItem], data_dir: Path) -> list[Utterance]:
    """The unit's recordings; a conversation whose recordings differ in format is sent
    as 16 kHz mono (what the server converts everything to), since one stream has one
    format."""
    utterances = [_load(item, data_dir) for item in unit]
    formats = {(u.rate, u.channels) for u in utterances}
    return [_mono16k(u) for u in utterances] if len(formats) > 1 else utterances


class Replayer:
    """Runs the work of one ``parley replay``: store calls on one thread of their own."""

    def __init__(
        self,
        edge: EdgeConfig,
        data_dir: Path,
        options: ReplayOptions,
        progress: Progress | None = None,
    ) -> None:
        self.edge = edge
        self.data_dir = data_dir
        self.options = options
        self.progress = progress
        self._store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-store")

    async def _on_store(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()

        def run() -> T:
            with db.database.connection_context():
                return call(*args)

        return await loop.run_in_executor(self._store, run)

    async def replay(self, dataset: db.Dataset, run_rows: Sequence[db.Run]) -> list[RunTally]:
        """Replay every unit not yet done in each run; returns each run's tally."""
        work, skipped = await self._on_store(pending_work, dataset, run_rows)
        return await self.replay_work(work, run_rows, skipped)

    async def replay_work(
        self,
        work: Sequence[tuple[list[db.DatasetItem], db.Run]],
        run_rows: Sequence[db.Run],
        skipped: dict[int, int],
    ) -> list[RunTally]:
        """Replay ``work`` (from :func:`pending_work`); returns each run's tally."""
        tallies = {r.id: RunTally(r.name, r.pipeline, skipped=skipped[r.id]) for r in run_rows}
        gate = asyncio.Semaphore(max(1, self.options.concurrency))
        try:
            async with asyncio.TaskGroup() as group:
                for unit, run in work:
                    group.create_task(self._unit(gate, unit, run, tallies[run.id]))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            for run in run_rows:
                await self._on_store(runs.finish, run)
            self._store.shutdown(wait=True)
        return list(tallies.values())

    async def _speak(self, unit: list[db.DatasetItem], run: db.Run) -> Conversation:
        try:
            utterances = await asyncio.to_thread(load_unit, unit, self.data_dir)
        except Exception as exc:  # a stored recording gone or damaged: this unit fails
            return Conversation(error=f"cannot read its recording: {exc}")
        edge = dataclasses.replace(
            self.edge, pipeline=run.pipeline, device_id=self.options.device_id
        )
        speaker = ScriptedEdge(
            edge, fast=self.options.fast, trailing_silence_s=self.options.trailing_silence_s
        )
        spoken = await speaker.converse(utterances, answer_timeout_s=self.options.answer_timeout_s)
        if spoken.error and not spoken.session_id:
            raise ReplayRefused(
                f"the server at {self.edge.server} refused a stream for pipeline "
                f"{run.pipeline!r}: {spoken.error}"
            )
        return spoken

    async def _unit(
        self,
        gate: asyncio.Semaphore,
        unit: list[db.DatasetItem],
        run: db.Run,
        tally: RunTally,
    ) -> None:
        async with gate:
            spoken = await self._speak(unit, run)
        outcomes = await self._on_store(runs.record, run, unit, spoken.turns, spoken.error)
        for item, (status, error) in zip(unit, outcomes, strict=True):
            if status == "done":
                tally.done += 1
                continue
            tally.failed += 1
            if len(tally.errors) < MAX_ERRORS:
                tally.errors.append(f"{item.key}: {error}")
        if self.progress is not None:
            self.progress(run, [status for status, _ in outcomes])
