"""One batched scorer per server process: every stream's ready windows in one model call.

Each session opens a :class:`ScoredStream`, hands it the windows its turn detector cut
(:meth:`ScoredStream.submit`, shape [k, window], without waiting) and takes their
probabilities back in order (:meth:`ScoredStream.scores`). The :class:`BatchScheduler`
collects the windows of every stream that has some waiting and scores them together in
one call of a batched model with per-stream state (:class:`BatchModel`: the Silero VAD's
``probabilities``; later an end-of-turn model), on its own thread so the event loop
goes on taking audio meanwhile. A stream with k windows takes part in k consecutive
calls (its state is recurrent: window i+1 needs window i's state), so each stream's
probabilities come back in order and equal what scoring it alone would give. A round
takes at most ``max_depth`` windows of one stream (the rest go in the next round), so
a stream that is behind catches up by several windows per round without holding the
others back.

Cadence: a round starts as soon as windows are waiting, but at most once per
interval, so under load windows from many streams gather into one call; a lone stream
waits for nothing. The interval is ``interval_s`` (a few ms) while few windows
arrive, and stretches up to ``max_interval_s`` as they arrive faster, so that a round
gathers about ``gather`` windows: a model call costs the same per call whatever its
batch (weights out of the caches, per-call overhead), so many small calls cost about
twice the CPU per window of a few large ones (docs/BENCHMARKS.md, `parley bench
load`). Under load a window waits at most the interval plus the round before it.

Depth: in a large round (``gather`` / 2 streams or more) a stream gives one window,
or up to ``max_depth`` when it is more than two behind; a second window of a few
streams would be a small, costly call of its own, and one window per round keeps up
as long as rounds come more often than windows (32 ms). In a small round every stream
gives up to ``max_depth``: there, latency comes first.

Errors: windows of the wrong shape fail only their own caller (ValueError, checked
before they join a round); a model error is raised by ``scores()`` of every stream in
that round (their state may be half advanced, so they are closed) and the scheduler
goes on. Closing a stream, or the scheduler, makes a waiting ``scores()`` raise
:class:`StreamClosed`; a round already running is let finish on its thread.
"""

from __future__ import annotations

import asyncio
import collections
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
GATHER_WINDOWS = 64  # windows a round gathers under load (the interval stretches for them)
RATE_SMOOTHING = 0.2  # weight of the latest round in the arrival-rate average
BEHIND = 2  # windows queued beyond which a stream catches up in a large round


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
    """One stream's handle: its model state, the windows waiting to be scored and the
    probabilities not yet taken. Use it from the event loop's thread only."""

    def __init__(self, scheduler: BatchScheduler[ModelT], state: Any) -> None:
        self._scheduler = scheduler
        self.state = state  # touched only by the scoring thread while a round runs
        self._queue: collections.deque[Float32Array] = collections.deque()  # [k, window] each
        self._queued = 0  # windows in _queue
        self._scored: list[Float32Array] = []  # probabilities not yet taken, in order
        self._ready = asyncio.Event()  # something to take (or closed)
        self._error: BaseException | None = None
        self.closed = False

    @property
    def pending(self) -> int:
        """Windows submitted whose probabilities were not taken yet."""
        return self._queued + self._scheduler._in_flight.get(self, 0) + sum(map(len, self._scored))

    def submit(self, windows: npt.ArrayLike) -> None:
        """Queue ``windows`` ([k, window], oldest first) for scoring; returns at once.
        Raises ValueError for a wrong shape, StreamClosed after close()."""
        x = np.asarray(windows, dtype=np.float32)
        width = self._scheduler.model.window
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"windows must have shape (k, {width}), not {x.shape}")
        if self.closed:
            raise StreamClosed(str(self._error or "this stream was closed"))
        if x.shape[0]:
            self._queue.append(x)
            self._queued += x.shape[0]
            self._scheduler._submitted += x.shape[0]
            self._scheduler._submit(self)

    async def scores(self) -> Float32Array:
        """The probabilities of the oldest submitted windows whose turn has come, in
        order (at least one; waits for them). Raises StreamClosed once closed, or the
        model's error. Cancelling it closes the stream."""
        try:
            while not self._scored:
                if self.closed:
                    raise self._error or StreamClosed("this stream was closed")
                self._ready.clear()
                await self._ready.wait()
        except asyncio.CancelledError:
            self.close()
            raise
        out = self._scored[0] if len(self._scored) == 1 else np.concatenate(self._scored)
        self._scored = []
        return out

    async def score(self, windows: npt.ArrayLike) -> Float32Array:
        """:meth:`submit` then the probabilities of exactly these windows (for a caller
        that has nothing else in flight on this stream)."""
        x = np.asarray(windows, dtype=np.float32)
        if self.pending:
            raise RuntimeError("score() with other windows of this stream still in flight")
        self.submit(x)
        parts, got = [], 0
        while got < len(x):
            parts.append(await self.scores())
            got += len(parts[-1])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def close(self, reason: str = "this stream was closed") -> None:
        """Stop scoring: waiting windows are dropped, a round already running is let be,
        and a waiting ``scores()`` raises StreamClosed."""
        if not self.closed:
            self.closed = True
            self._error = self._error or StreamClosed(reason)
        self._queue.clear()
        self._queued = 0
        self._scheduler._withdraw(self)
        self._ready.set()

    # -- on the event loop, for the scheduler

    def _take(self, depth: int) -> Float32Array:
        """Up to ``depth`` of the oldest queued windows."""
        parts: list[Float32Array] = []
        need = depth
        while need and self._queue:
            head = self._queue[0]
            if len(head) <= need:
                parts.append(self._queue.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self._queue[0] = head[need:]
                need = 0
        taken = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._queued -= len(taken)
        return taken

    def _deliver(self, probs: Float32Array) -> None:
        self._scored.append(probs)
        self._ready.set()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self.close()


def _name_thread(name: str) -> None:
    """Give the calling thread an OS-level name (seen in /proc/PID/task/TID/comm)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


class BatchScheduler(Generic[ModelT]):
    """Scores the waiting windows of all open streams in batched model calls on one thread.

    ``interval_s``: the least time between two rounds' starts; ``max_interval_s``: the
    most it stretches to under load, to gather ``gather`` windows per round (see the
    module docstring); ``max_batch``: windows per model call at most (more waiting
    streams are split over several calls); ``max_depth``: windows of one stream per
    round at most."""

    def __init__(
        self,
        model: ModelT,
        *,
        interval_s: float = 0.008,
        max_interval_s: float | None = None,
        gather: int = GATHER_WINDOWS,
        max_batch: int = 256,
        max_depth: int = 8,
        thread_name: str = THREAD_NAME,
    ) -> None:
        """``max_interval_s`` None or below ``interval_s``: ``interval_s`` always (no
        stretching)."""
        if interval_s < 0:
            raise ValueError("interval_s must be >= 0")
        max_interval_s = max(interval_s, max_interval_s or 0.0)
        if max_batch < 1 or max_depth < 1 or gather < 1:
            raise ValueError("gather, max_batch and max_depth must be >= 1")
        self.model = model
        self.interval_s, self.max_interval_s, self.gather = interval_s, max_interval_s, gather
        self._submitted = 0  # windows submitted, ever (for the arrival rate)
        self._rate = 0.0  # windows arriving per second (moving average over rounds)
        self.max_batch, self.max_depth = max_batch, max_depth
        self.stats = SchedulerStats()
        self._thread_name = thread_name
        self._streams: set[ScoredStream[ModelT]] = set()  # open
        self._ready: dict[ScoredStream[ModelT], None] = {}  # with windows waiting, in order
        self._in_flight: dict[ScoredStream[ModelT], int] = {}  # windows in the running round
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
        """Close every stream, let a running round finish, stop the thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for stream in list(self._streams):
            stream.close("the scheduler was closed")
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    def open(self) -> ScoredStream[ModelT]:
        """A new stream with fresh model state."""
        if self._closed:
            raise StreamClosed("the scheduler is closed")
        if self._task is None:
            self.start()
        stream = ScoredStream(self, self.model.new_stream())
        self._streams.add(stream)
        return stream

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
        self._streams.discard(stream)

    def interval(self) -> float:
        """The least time between two rounds' starts now (seconds): long enough to
        gather ``gather`` windows at the recent arrival rate, within
        [``interval_s``, ``max_interval_s``]."""
        if self._rate <= 0:
            return self.interval_s
        return min(self.max_interval_s, max(self.interval_s, self.gather / self._rate))

    def _note_arrivals(self, now: float, since: float, submitted: int) -> None:
        elapsed = now - since
        if math.isfinite(elapsed) and elapsed > 0:
            rate = (self._submitted - submitted) / elapsed
            self._rate += RATE_SMOOTHING * (rate - self._rate)

    async def _run(self) -> None:
        assert self._wakeup is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        last_start, submitted = -math.inf, 0
        while True:
            await self._wakeup.wait()
            delay = last_start + self.interval() - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # let more streams' windows gather
            self._wakeup.clear()
            streams = list(self._ready)
            self._ready.clear()
            if not streams:
                continue
            now = loop.time()
            self._note_arrivals(now, last_start, submitted)
            last_start, submitted = now, self._submitted
            large = len(streams) >= self.gather // 2
            work = [
                (s.state, s._take(1 if large and s._queued <= BEHIND else self.max_depth))
                for s in streams
            ]
            self._in_flight = {stream: len(w) for stream, (_, w) in zip(streams, work, strict=True)}
            try:
                done = await loop.run_in_executor(self._executor, self._score, work)
            except asyncio.CancelledError:  # closing: the thread finishes the round alone
                for stream in streams:
                    stream.close("the scheduler was closed")
                raise
            except Exception as exc:  # the model failed: every stream of the round hears it
                log.exception("VAD round of %d streams failed", len(streams))
                for stream in streams:
                    stream._fail(exc)
                continue
            finally:
                self._in_flight = {}
            self._count(sum(len(w) for _, w in work), done)
            for stream, probs in zip(streams, done.probabilities, strict=True):
                if stream.closed:  # closed mid-round: its windows are dropped
                    continue
                stream._deliver(probs)
                if stream._queued:  # more than max_depth waited: the rest next round
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
