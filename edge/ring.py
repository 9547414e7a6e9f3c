"""The audio the server has not confirmed yet: chunks waiting to be sent, and chunks
sent but not acknowledged.

Every captured chunk goes in; the connection's sender takes them out in order, and a
taken chunk stays here ("in flight") until the server acknowledges its seq
(``Welcome.next_audio_seq`` on connecting, ``AudioAck`` while streaming). When a stream
breaks, the chunks in flight go back to the front of the queue (:meth:`rewind`) and
are sent again on the next stream; the server drops any it had already taken. So
nothing the server did not take is lost, and nothing is taken twice.

Both parts are bounded: while the server is unreachable the queue fills (default
30 s) and then the oldest chunk is dropped and counted (``dropped``), so after a long
outage the most recent audio is what reaches the server, with its original capture
times; chunks in flight beyond ``unacked_capacity`` (a server that never
acknowledges) are forgotten and counted (``unconfirmed``).
"""

from __future__ import annotations

import asyncio
import collections

from protos import edge_pb2


class AudioRing:
    def __init__(self, capacity: int, unacked_capacity: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("the audio buffer must hold at least one chunk")
        self.capacity = capacity
        self.unacked_capacity = max(1, unacked_capacity or capacity)
        self.dropped = 0  # chunks dropped unsent because the queue was full
        self.unconfirmed = 0  # chunks sent, then forgotten without an acknowledgement
        self.acknowledged = 0  # chunks the server confirmed
        self.resent = 0  # chunks put back for sending again after a stream broke
        self._unsent: collections.deque[edge_pb2.AudioChunk] = collections.deque()
        self._in_flight: collections.deque[edge_pb2.AudioChunk] = collections.deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Chunks held: waiting to be sent plus in flight."""
        return len(self._unsent) + len(self._in_flight)

    @property
    def unsent(self) -> int:
        return len(self._unsent)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def append(self, chunk: edge_pb2.AudioChunk) -> bool:
        """Add the newest chunk; returns False when the oldest had to be dropped."""
        self._unsent.append(chunk)
        self._ready.set()
        return self._trim_unsent()

    def _trim_unsent(self) -> bool:
        fits = True
        while len(self._unsent) > self.capacity:
            self._unsent.popleft()
            self.dropped += 1
            fits = False
        return fits

    def sent(self, chunk: edge_pb2.AudioChunk) -> None:
        """A chunk went to the stream without waiting here (kept until acknowledged)."""
        self._in_flight.append(chunk)
        while len(self._in_flight) > self.unacked_capacity:
            self._in_flight.popleft()
            self.unconfirmed += 1

    def take(self) -> edge_pb2.AudioChunk | None:
        """The oldest unsent chunk, now in flight (None when there is none)."""
        if not self._unsent:
            self._ready.clear()
            return None
        chunk = self._unsent.popleft()
        self.sent(chunk)
        return chunk

    async def get(self) -> edge_pb2.AudioChunk:
        """The oldest unsent chunk (now in flight), waiting for one if there is none."""
        while (chunk := self.take()) is None:
            await self._ready.wait()
        return chunk

    def acknowledge(self, next_seq: int) -> int:
        """The server has taken every chunk below ``next_seq``: forget them (in flight,
        and unsent ones it took on an earlier stream). Returns how many."""
        count = 0
        for chunks in (self._in_flight, self._unsent):
            while chunks and chunks[0].seq < next_seq:
                chunks.popleft()
                count += 1
        self.acknowledged += count
        return count

    def rewind(self) -> int:
        """The stream broke: chunks in flight go back to the front, in order, to be
        sent again (the oldest are dropped if that overfills the queue)."""
        count = len(self._in_flight)
        self._unsent.extendleft(reversed(self._in_flight))
        self._in_flight.clear()
        self.resent += count
        self._trim_unsent()
        if self._unsent:
            self._ready.set()
        return count
