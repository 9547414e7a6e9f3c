"""The agent's counters (logged on exit, written by ``--stats-file``, read by the
benchmark and the tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class AgentStats:
    chunks_captured: int = 0
    chunks_sent: int = 0  # handed to gRPC on streams that have ended
    chunks_dropped: int = 0  # the ring buffer was full
    chunks_gated: int = 0  # sent as silence (half-duplex, answer playing)
    chunks_replayed: int = 0  # captured while disconnected, sent after reconnecting
    frames_sent: int = 0
    frames_dropped: int = 0
    connects: int = 0
    disconnects: int = 0
    turns: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
