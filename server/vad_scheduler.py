"""One batched scorer per server process: every stream's ready windows in one model call.

Each session opens a :class:`ScoredStream` and awaits :meth:`ScoredStream.score` with
the windows its turn detector cut (shape [k, window]). The :class:`BatchScheduler`
collects the windows of every stream that has some ready and scores them together in
one call of a batched model with per-stream state (:class:`BatchModel`: the Silero VAD's
``probabilities``; later an end-of-turn model), on its own thread so the event loop
goes on taking audio meanwhile. A stream with k windows takes part in k consecutive
calls (its state is recurrent: window i+1 needs window i's state), so each stream's
probabilities come back in order and equal what scoring it alone would give; a round
takes at most ``max_depth`` windows of one stream, the rest wait for the next round.

Cadence: a batch starts as soon as windows are ready, but at most once per
``interval_s`` (a few ms), so under load windows from many streams gather into one
call; a lone stream waits for nothing. Under load a window waits at most
``interval_s`` plus the batch before it.

Errors: windows of the wrong shape fail only their own caller (ValueError, checked
before they join a batch); a model error fails every caller of that batch and the
scheduler goes on. Cancelling a ``score()`` closes its stream (its state may be half
advanced). Closing a stream, or the scheduler, makes a waiting ``score()`` raise
:class:`StreamClosed`; a batch already running is let finish on its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]
StateT = TypeVar("StateT")
THREAD_NAME = "parley-vad"  # the scoring thread's name in /proc (bench load reads it)


class BatchModel(Protocol[StateT]):
    """A model scoring one window per stream for a batch of streams, each with its own
    state (``SileroVad``: windows [B, 512] at 16 kHz -> speech probabilities [B])."""

    window: int  # samples per window

    def new_stream(self) -> StateT: ...

    def probabilities(self, streams: Sequence[StateT], windows: Float32Array) -> Float32Array:
        """Score ``windows[i]`` for ``streams[i]`` (advancing its state); shape [B]."""
        ...


ModelT = TypeVar("ModelT", bound=BatchModel[Any])


class StreamClosed(RuntimeError):
    """score() on a stream that was closed (or whose scheduler was)."""


@dataclass
class _Job:
    windows: Float32Array  # [k, window]
    future: asyncio.Future[Float32Array]
    done: int = 0  # windows scored so far (a long job takes several rounds)

    def __post_init__(self) -> None:
        self.scores = np.empty(len(self.windows), dtype=np.float32)


@dataclass
class _Round:
    probabilities: list[Float32Array]  # per job, in job order
    cpu_s: float  # the scoring thread's CPU time for the round
    calls: int
    largest: int


@dataclass
class SchedulerStats:
    """Counters since the scheduler started (read on the event loop)."""

    windows: int = 0  # windows scored
    rounds: int = 0  # scheduler rounds (each one model call per window depth, or more)
    calls: int = 0  # model calls
    largest_call: int = 0  # most windows in one model call
    thread_cpu_s: float = 0.0  # CPU time of the scoring thread spent in rounds

    @property
    def cpu_ms_per_window(self) -> float:
        return 1000 * self.thread_cpu_s / self.windows if self.windows else math.nan


class ScoredStream(Generic[ModelT]):
    """One stream's handle: its model state and at most one pending score() at a time."""

    def __init__(self, scheduler: BatchScheduler[ModelT], state: Any) -> None:
        self._scheduler = scheduler
        self.state = state  # touched only by the scoring thread while a job runs
        self._job: _Job | None = None
        self.closed = False

    async def score(self, windows: npt.ArrayLike) -> Float32Array:
        """Probabilities of ``windows`` ([k, window], oldest first), in order.

        Raises ValueError for a wrong shape, StreamClosed after close(), RuntimeError
        when called again before the previous call returned."""
        x = np.asarray(windows, dtype=np.float32)
        width = self._scheduler.model.window
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"windows must have shape (k, {width}), not {x.shape}")
        if self.closed:
            raise StreamClosed("this stream was closed")
        if not x.shape[0]:
            return np.zeros(0, dtype=np.float32)
        if self._job is not None:
            raise RuntimeError("score() called again before the previous call returned")
        job = _Job(x, asyncio.get_running_loop().create_future())
        self._job = job
        self._scheduler._submit(self)
        try:
            return await job.future
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            if self._job is job:
                self._job = None

    def close(self, reason: str = "this stream was closed") -> None:
        """Stop scoring: a waiting call raises StreamClosed; a running batch is let be."""
        self.closed = True
        self._scheduler._withdraw(self)
        if self._job is not None and not self._job.future.done():
            self._job.future.set_exception(StreamClosed(reason))


def _name_thread(name: str) -> None:
    """Give the calling thread an OS-level name (seen in /proc/PID/task/TID/comm)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


class BatchScheduler(Generic[ModelT]):
    """Scores the ready windows of all open streams in batched model calls on one thread.

    ``interval_s``: the least time between two rounds' starts; ``max_batch``: windows
    per model call at most (more ready streams are split over several calls);
    ``max_depth``: windows of one stream per round at most (a stream that sends a long
    chunk at once has it scored over several rounds, so others' windows do not wait
    behind it)."""

    def __init__(
        self,
        model: ModelT,
        *,
        interval_s: float = 0.004,
        max_batch: int = 256,
        max_depth: int = 8,
        thread_name: str = THREAD_NAME,
    ) -> None:
        if interval_s < 0 or max_batch < 1 or max_depth < 1:
            raise ValueError("interval_s must be >= 0, max_batch and max_depth >= 1")
        self.model = model
        self.interval_s = interval_s
        self.max_batch, self.max_depth = max_batch, max_depth
        self.stats = SchedulerStats()
        self._thread_name = thread_name
        self._ready: dict[ScoredStream[ModelT], None] = {}  # streams with a waiting job
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the scheduling task (on the running loop) and the scoring thread."""
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            1,
            thread_name_prefix=self._thread_name,
            initializer=_name_thread,
            initargs=(self._thread_name,),
        )
        self._task = asyncio.create_task(self._run(), name="vad-scheduler")

    async def aclose(self) -> None:
        """Cancel waiting calls, let a running batch finish, stop the thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for stream in list(self._ready):
            stream.close("the scheduler was closed")
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    def open(self) -> ScoredStream[ModelT]:
        """A new stream with fresh model state."""
        if self._closed:
            raise StreamClosed("the scheduler is closed")
        if self._task is None:
            self.start()
        return ScoredStream(self, self.model.new_stream())

    @property
    def waiting(self) -> int:
        """Streams whose windows wait for the next round."""
        return len(self._ready)

    # ------------------------------------------------------------------ internals

    def _submit(self, stream: ScoredStream[ModelT]) -> None:
        if self._closed:
            stream.close("the scheduler was closed")
            return
        self._ready[stream] = None
        assert self._wakeup is not None
        self._wakeup.set()

    def _withdraw(self, stream: ScoredStream[ModelT]) -> None:
        self._ready.pop(stream, None)

    async def _run(self) -> None:
        assert self._wakeup is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        last_start = -math.inf
        while True:
            await self._wakeup.wait()
            delay = last_start + self.interval_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # let more streams' windows gather
            self._wakeup.clear()
            jobs = [(stream, job) for stream in self._ready if (job := stream._job) is not None]
            self._ready.clear()
            if not jobs:
                continue
            last_start = loop.time()
            depth = self.max_depth
            work = [(s.state, job.windows[job.done : job.done + depth]) for s, job in jobs]
            try:
                results = await loop.run_in_executor(self._executor, self._score, work)
            except asyncio.CancelledError:  # closing: the thread finishes the batch alone
                for stream, _ in jobs:
                    stream.close("the scheduler was closed")
                raise
            except Exception as exc:  # the model failed: every caller of this batch hears it
                log.exception("VAD batch of %d streams failed", len(jobs))
                for _, job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self._count(sum(len(windows) for _, windows in work), results)
            for (stream, job), probs in zip(jobs, results.probabilities, strict=True):
                if job.future.done():  # a stream closed mid-batch is skipped
                    continue
                job.scores[job.done : job.done + len(probs)] = probs
                job.done += len(probs)
                if job.done == len(job.windows):
                    job.future.set_result(job.scores)
                else:  # the rest of a long job in the next round, with the others
                    self._submit(stream)

    def _score(self, work: list[tuple[Any, Float32Array]]) -> _Round:
        """On the scoring thread: call r scores the r-th window of every stream that has
        one, so each stream's windows go through the model in order."""
        started = time.thread_time()
        lengths = np.array([len(windows) for _, windows in work])
        scores = np.empty((len(work), int(lengths.max())), dtype=np.float32)
        calls = largest = 0
        for r in range(scores.shape[1]):
            members = np.flatnonzero(lengths > r)
            for first in range(0, len(members), self.max_batch):
                part = members[first : first + self.max_batch]
                batch = np.array([work[i][1][r] for i in part])  # (np.stack is slower)
                scores[part, r] = self.model.probabilities([work[i][0] for i in part], batch)
                calls, largest = calls + 1, max(largest, len(part))
        out = [scores[i, :n] for i, n in enumerate(lengths)]
        return _Round(out, time.thread_time() - started, calls, largest)

    def _count(self, windows: int, done: _Round) -> None:
        stats = self.stats
        stats.windows += windows
        stats.rounds += 1
        stats.calls += done.calls
        stats.thread_cpu_s += done.cpu_s
        stats.largest_call = max(stats.largest_call, done.largest)
