"""The agent's counters (logged on exit, written by ``--stats-file``, read by the
benchmark and the tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class AgentStats:
    # Every captured chunk is, at any moment, exactly one of: sent (the server
    # acknowledged it), buffered (waiting, or in flight), dropped or unconfirmed.
    chunks_captured: int = 0
    chunks_sent: int = 0  # acknowledged by the server (taken exactly once)
    chunks_dropped: int = 0  # the ring buffer was full: never sent
    chunks_unconfirmed: int = 0  # sent, then forgotten without an acknowledgement
    chunks_gated: int = 0  # sent as silence (half-duplex, answer playing)
    chunks_replayed: int = 0  # waiting in the buffer when a stream (re)opened
    chunks_resent: int = 0  # sent again because the stream broke before they were acked
    frames_sent: int = 0
    frames_dropped: int = 0
    connects: int = 0
    disconnects: int = 0
    turns: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
