"""The agent's link to the server: connect, run one Converse stream, and when it
breaks, reconnect after an exponential backoff with jitter (capped).

Per stream: the reader (this task) hands server events to the agent; a sender moves
audio from the ring buffer to the stream once the server has said Welcome; a pinger
sends a Ping every ``PING_S`` and abandons a stream on which the server has said
nothing for ``STALL_S`` (gRPC keepalive catches dead TCP connections; this catches a
server that accepts but does not answer).

Delivery is acknowledged: every chunk stays in the ring until the server says it has
taken it (``Welcome.next_audio_seq``, ``AudioAck``); when a stream breaks, the chunks
not acknowledged go back to the front of the ring and are sent on the next stream,
where the server drops any it had taken already. Nothing lost, nothing taken twice.

The backoff starts again from its shortest delay only after a stream has stayed up
``HEALTHY_S`` seconds past the server's Welcome: a server that welcomes and then drops
every stream (a crash loop behind a proxy) sees the capped reconnect rate, not a storm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from edge.backoff import Backoff
from edge.connection import Connection
from edge.ring import AudioRing
from edge.stats import AgentStats
from parley.config import EdgeConfig
from parley.errors import ParleyError
from protos import edge_pb2

log = logging.getLogger("edge")

PING_S = 5.0
STALL_S = 20.0
REMIND_S = 60.0  # while the server stays unreachable, say so again this often
HEALTHY_S = 10.0  # a stream that lasted this long after Welcome resets the backoff
FATAL_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
}


class AgentRejected(ParleyError):
    """The server refused this edge (token, pipeline, audio format): retrying is useless."""


class StreamStalled(Exception):
    pass


class Uplink:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        ring: AudioRing,
        stats: AgentStats,
        dial: Callable[[], grpc.aio.Channel],
        hello: Callable[[], edge_pb2.Hello],
        on_event: Callable[[edge_pb2.ServerEvent], None],
    ) -> None:
        self.config, self.ring, self.stats = config, ring, stats
        self.dial, self.hello, self.on_event = dial, hello, on_event
        self.connected = asyncio.Event()
        self.session_id = ""
        self.stopping = False
        self.conn: Connection | None = None
        self._sending = False  # the sender holds a chunk the outbox has not taken yet
        self._dropping = False
        self._last_event = 0.0
        self.healthy_s = HEALTHY_S
        self._welcomed_at: float | None = None  # when the open stream's Welcome came

    def push(self, chunk: edge_pb2.AudioChunk) -> None:
        """A new chunk of audio: straight onto the open stream when nothing older is
        waiting (the common case: one hop less), else into the ring buffer."""
        conn = self.conn
        if (
            conn is not None
            and self.connected.is_set()
            and not self.ring.unsent
            and not self._sending
            and conn.offer(edge_pb2.EdgeEvent(audio=chunk))
        ):
            self.ring.sent(chunk)  # kept until the server acknowledges it
            return
        if not self.ring.append(chunk) and not self._dropping:
            self._dropping = True
            log.warning("audio buffer full (%.0f s): dropping the oldest", self.config.buffer_s)

    def offer(self, event: edge_pb2.EdgeEvent) -> bool:
        """Queue an event on the open stream; False when disconnected or full."""
        conn = self.conn
        return conn is not None and self.connected.is_set() and conn.offer(event)

    @property
    def backlog(self) -> int | None:
        """Events waiting in the open stream's outbox (None when disconnected)."""
        conn = self.conn
        return conn.backlog if conn is not None and self.connected.is_set() else None

    def sync_stats(self) -> AgentStats:
        """The stats with the ring's delivery counters brought up to date."""
        ring, stats = self.ring, self.stats
        stats.chunks_sent, stats.chunks_dropped = ring.acknowledged, ring.dropped
        stats.chunks_unconfirmed, stats.chunks_resent = ring.unconfirmed, ring.resent
        return stats

    async def close(self, task: asyncio.Task[None], timeout: float = 1.0) -> None:
        """Stop reconnecting; half-close an open stream so the server ends the session
        cleanly, waiting for that up to ``timeout`` seconds."""
        self.stopping = True
        conn = self.conn
        if conn is not None and self.connected.is_set() and not task.done():
            conn.close_send()
            await asyncio.wait([task], timeout=timeout)

    async def run(self) -> None:
        backoff = Backoff(cap=self.config.reconnect_max_s)
        log.info("connecting to %s", self.config.server)
        last_reason, remind_at = "", 0.0
        while not self.stopping:
            try:
                await self._stream()
                reason = "the server ended the stream"
            except grpc.aio.AioRpcError as exc:
                if exc.code() in FATAL_STATUS:
                    raise AgentRejected(
                        f"{self.config.server} refused this edge: {exc.details()}"
                    ) from None
                reason = f"{exc.code().name}: {exc.details()}"
            except StreamStalled:
                reason = f"no answer from the server for {STALL_S:.0f} s"
            was_connected = self.connected.is_set()
            self.connected.clear()
            if self.stopping:
                return
            welcomed, self._welcomed_at = self._welcomed_at, None
            if welcomed is not None and time.monotonic() - welcomed >= self.healthy_s:
                backoff.reset()  # that stream was healthy: this is a fresh failure
            delay = backoff.next()
            now = time.monotonic()
            if was_connected:
                self.stats.disconnects += 1
                log.warning(
                    "disconnected (%s); reconnecting in %.1f s, buffering audio (up to %.0f s)",
                    reason,
                    delay,
                    self.config.buffer_s,
                )
            elif reason != last_reason or now >= remind_at:  # not every retry: a state change
                log.warning(
                    "cannot reach %s (%s); retrying every %g s or less, %.1f s of audio "
                    "buffered, %d chunks dropped",
                    self.config.server,
                    reason,
                    self.config.reconnect_max_s,
                    len(self.ring) * self.config.chunk_ms / 1000,
                    self.ring.dropped,
                )
                remind_at = now + REMIND_S
            else:
                log.debug("retrying in %.1f s (%s)", delay, reason)
            last_reason = reason
            await asyncio.sleep(delay)

    async def _stream(self) -> None:
        """One Converse stream, until it ends."""
        conn = Connection(self.dial(), self.hello())
        self.conn = conn
        self._last_event = time.monotonic()
        helpers: list[asyncio.Task[None]] = []
        try:
            async for event in conn.events():
                self._last_event = time.monotonic()
                if event.HasField("audio_ack"):
                    self.ring.acknowledge(event.audio_ack.next_seq)
                elif event.HasField("welcome"):
                    self._on_welcome(event.welcome)
                    reader = asyncio.current_task()
                    helpers.append(asyncio.create_task(self._send(conn)))
                    helpers.append(asyncio.create_task(self._ping(conn, reader)))
                self.on_event(event)
        except asyncio.CancelledError:
            stalled = any(t.done() and not t.cancelled() and t.exception() for t in helpers)
            task = asyncio.current_task()
            if stalled and task is not None and not self.stopping:
                task.uncancel()  # the pinger's cancel, not ours to pass on
                raise StreamStalled() from None
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.conn = None
            self._sending = False
            self.ring.rewind()  # not acknowledged: sent again on the next stream
            await conn.close()

    def _on_welcome(self, welcome: edge_pb2.Welcome) -> None:
        self._welcomed_at = time.monotonic()
        # What the server (or one before it) has taken already need not come again.
        self.ring.acknowledge(welcome.next_audio_seq)
        self.session_id = welcome.session_id
        self.stats.connects += 1
        self.connected.set()
        log.info(
            "connected to %s (session %s, pipeline %s)",
            self.config.server,
            welcome.session_id,
            welcome.pipeline,
        )
        self._dropping = False
        if self.stats.connects > 1 and len(self.ring):
            self.stats.chunks_replayed += len(self.ring)
            log.info(
                "sending %.1f s of audio the server has not confirmed (%d chunks dropped so far)",
                len(self.ring) * self.config.chunk_ms / 1000,
                self.ring.dropped,
            )

    async def _send(self, conn: Connection) -> None:
        """Move what waits in the ring buffer onto the stream, oldest first (each chunk
        stays in the ring, in flight, until acknowledged)."""
        while True:
            chunk = await self.ring.get()
            self._sending = True  # until the outbox has it: newer chunks must wait
            await conn.send(edge_pb2.EdgeEvent(audio=chunk))
            self._sending = False

    async def _ping(self, conn: Connection, reader: asyncio.Task[None] | None) -> None:
        while True:
            await asyncio.sleep(PING_S)
            if time.monotonic() - self._last_event > STALL_S:
                if reader is not None:
                    reader.cancel()
                raise StreamStalled()
            conn.offer(edge_pb2.EdgeEvent(ping=edge_pb2.Ping(edge_time=time.monotonic())))
