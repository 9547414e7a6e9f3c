"""A turn's latency record: the moments that matter, and each stage split into the
engine's own time and everything else (transfer, queueing, serialisation).

Server marks are on the server's monotonic clock, relative to the VAD's end-of-speech
decision. Model times are measured inside the workers (durations, so no clock sync).
Edge times (speech end, first audio played) are on the edge's clock and only compared
with each other: voice-to-voice = first audio played - speech end.

Critical path to the first answer audio:

    decision -> stt_done -> first_sentence -> tts_first_audio -> first_audio_sent
                [  stt   ]  [      llm     ]  [      tts      ]  [     send     ]

Each bracket = that stage's model time + its overhead; the overheads add up to
``overhead_ms`` exactly, so nothing between stages is hidden.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MARKS = ("stt_done", "llm_first_token", "first_sentence", "tts_first_audio", "first_audio_sent")


@dataclass
class TurnLatency:
    decision_at: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)  # name -> perf_counter()
    model: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    endpointing_s: float = 0.0  # audio time from speech end to the VAD's decision
    speech_end_edge: float | None = None
    first_played_edge: float | None = None
    done_at: float | None = None

    def mark(self, name: str) -> None:
        """Record ``name`` the first time it happens; later calls are ignored."""
        self.marks.setdefault(name, time.perf_counter())

    def model_time(self, stage: str, seconds: float) -> None:
        self.model.setdefault(stage, seconds)

    def done(self) -> None:
        if self.done_at is None:
            self.done_at = time.perf_counter()

    def _since_decision(self, name: str) -> float | None:
        at = self.marks.get(name)
        return None if at is None else (at - self.decision_at) * 1000.0

    @property
    def voice_to_voice_ms(self) -> float | None:
        if self.speech_end_edge is None or self.first_played_edge is None:
            return None
        return (self.first_played_edge - self.speech_end_edge) * 1000.0

    def record(self) -> dict[str, float]:
        """The flat record stored with the turn and sent in TurnEvent FINISHED (ms)."""
        out: dict[str, float] = {"endpointing_ms": self.endpointing_s * 1000.0}
        for name in MARKS:
            value = self._since_decision(name)
            if value is not None:
                out[f"{name}_ms"] = value
        if self.done_at is not None:
            out["turn_total_ms"] = (self.done_at - self.decision_at) * 1000.0
        previous = 0.0
        for stage, mark in (
            ("stt", "stt_done"),
            ("llm", "first_sentence"),
            ("tts", "tts_first_audio"),
            ("send", "first_audio_sent"),
        ):
            at = out.get(f"{mark}_ms")
            if at is None:
                break
            model = self.model.get(stage, 0.0) * 1000.0
            out[f"{stage}_ms"] = at - previous
            out[f"{stage}_model_ms"] = model
            out[f"{stage}_overhead_ms"] = at - previous - model
            previous = at
        if "first_audio_sent_ms" in out:
            out["overhead_ms"] = sum(out[f"{s}_overhead_ms"] for s in ("stt", "llm", "tts", "send"))
        if self.speech_end_edge is not None:
            out["speech_end_edge_s"] = self.speech_end_edge
        if self.first_played_edge is not None:
            out["first_played_edge_s"] = self.first_played_edge
        v2v = self.voice_to_voice_ms
        if v2v is not None:
            out["voice_to_voice_ms"] = v2v
        return out
