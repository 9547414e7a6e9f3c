"""Exactly-once audio across reconnects: which chunks the server has taken, per device.

The edge numbers its chunks (``AudioChunk.seq``, one numbering per
``Hello.audio_epoch``) and keeps every chunk until the server acknowledges it; after a
reconnect it resends what was not acknowledged. The server acknowledges a chunk once it
no longer needs it from the edge: its audio is in a turn whose input is stored, or it
was silence the VAD has finished with (outside any turn, behind the pre-roll). So a
server that dies loses nothing the edge has forgotten, and what it had not finished
with comes again, to it or to the next server.

- :class:`DeliveryLedger` (one per server process) remembers, per device and epoch, the
  first seq not yet taken, so a reconnect to the same server resumes where the last
  stream stopped; the value is also stored with each turn (the ``device`` row), so a
  restarted server knows it too.
- :class:`AudioReceipts` (one per stream) drops repeats (seq below that point, or not
  above the last chunk taken on this stream), maps chunks to positions in the
  converted audio, and turns "audio before sample N is finished with" into the next
  acknowledgement.
"""

from __future__ import annotations

import collections
import time

# An AudioAck at most this often (when the point moved): each is a gRPC write per
# stream, and the edge keeps [edge] unacked_s (45 s) of audio, so once a second is
# plenty; after a reconnect at most about a second more is resent (and dropped here).
ACK_EVERY_S = 1.0
LEDGER_DEVICES = 10_000  # devices remembered in memory (least recently seen dropped)


class DeliveryLedger:
    """Device + epoch -> the first seq not yet taken, for this server process."""

    def __init__(self, keep: int = LEDGER_DEVICES) -> None:
        self.keep = keep
        self._next: collections.OrderedDict[tuple[str, str], int] = collections.OrderedDict()

    def resume(self, device_id: str, epoch: str, stored: tuple[str, int] | None = None) -> int:
        """Where a new stream of ``device_id`` resumes: what this process has taken, or
        what the store recorded for the same epoch (``stored``: epoch, next seq)."""
        if not epoch:
            return 0
        known = self._next.get((device_id, epoch), 0)
        if stored is not None and stored[0] == epoch:
            known = max(known, stored[1])
        return known

    def advance(self, device_id: str, epoch: str, next_seq: int) -> None:
        if not epoch:
            return
        key = (device_id, epoch)
        self._next[key] = max(self._next.get(key, 0), next_seq)
        self._next.move_to_end(key)
        while len(self._next) > self.keep:
            self._next.popitem(last=False)


class AudioReceipts:
    """One stream's chunks: accept or drop each by seq, and compute acknowledgements.

    Positions are samples of the converted (16 kHz) stream; a chunk is finished with
    once every sample it produced lies before the point the session no longer needs.
    """

    def __init__(
        self,
        next_seq: int = 0,
        *,
        ledger: DeliveryLedger | None = None,
        device_id: str = "",
        epoch: str = "",
    ) -> None:
        self.ledger, self.device_id, self.epoch = ledger, device_id, epoch
        self.acked = next_seq  # every seq below this is taken
        self.last: int | None = None  # the last seq taken on this stream
        self.repeats = 0  # chunks dropped as already taken (after a reconnect)
        self.out_of_order = 0  # chunks whose seq did not increase on this stream
        self._taken: collections.deque[tuple[int, int, bool]] = collections.deque()
        self._sent_ack = next_seq
        self._sent_at = 0.0

    def accept(self, seq: int) -> str:
        """ "" to use the chunk ``seq``; else why it is dropped: "repeat" (taken before,
        resent after a reconnect) or "out of order" (seq did not increase on this
        stream). Both are counted."""
        if seq < self.acked:
            self.repeats += 1
            return "repeat"
        if self.last is not None and seq <= self.last:
            self.out_of_order += 1
            return "out of order"
        self.last = seq
        return ""

    def taken(self, seq: int, end_sample: int, whole: bool = True) -> None:
        """The chunk ``seq`` has been converted; its audio ends before ``end_sample``.
        ``whole``: no part of it is held back (a partial frame carried to the next)."""
        self._taken.append((seq, end_sample, whole))

    def point(self, needed_from: int) -> int:
        """The acknowledgement if audio before sample ``needed_from`` is finished with
        (does not change anything)."""
        point = self.acked
        for seq, end, whole in self._taken:
            if end > needed_from:
                break
            if whole:
                point = seq + 1
        return point

    def advance(self, needed_from: int) -> int:
        """Forget the chunks finished with; the new acknowledgement point."""
        while self._taken and self._taken[0][1] <= needed_from:
            seq, _, whole = self._taken.popleft()
            if whole:
                self.acked = max(self.acked, seq + 1)
        if self.ledger is not None:
            self.ledger.advance(self.device_id, self.epoch, self.acked)
        return self.acked

    def ack_due(self, now: float | None = None) -> int | None:
        """The point to send in an AudioAck now, or None (unchanged, or sent recently)."""
        now = time.monotonic() if now is None else now
        if self.acked > self._sent_ack and now - self._sent_at >= ACK_EVERY_S:
            self._sent_ack, self._sent_at = self.acked, now
            return self.acked
        return None
