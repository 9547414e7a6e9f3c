"""A turn's latency record: the moments that matter, and each stage split into the
engine's own time and everything else (transfer, queueing, serialisation).

Server marks are on the server's monotonic clock, relative to the VAD's end-of-speech
decision. Model times are measured inside the workers (durations, so no clock sync).
Edge times (speech end, first audio played) are on the edge's clock and only compared
with each other: voice-to-voice = first audio played - speech end.

Every stage is a *segment*: from the moment its inputs were ready (a mark, or the
decision itself) to the mark of its first output, split into the engine's model time
and overhead. For the classic pipeline the critical path to the first answer audio is

    decision -> stt_done -> first_sentence -> tts_first_audio -> first_audio_sent
                [  stt   ]  [      llm     ]  [      tts      ]  [     send     ]

and in any graph it is the chain of segments that ends at ``first_audio_sent``, each
starting at the end of the one before (e.g. ``stt -> retrieve -> llm -> tts -> send``
when retrieval finished after the transcript and before the LLM could start). The
overheads along that chain add up to ``overhead_ms`` exactly, so nothing between
stages is hidden. Stages off the path (an analysis that finished early) still get
their own ``<key>_ms``, ``<key>_model_ms`` and ``<key>_overhead_ms``.

A segment's key is its stage's kind (``stt``, ``llm``, ``speech_llm``, ``analyse``,
``retrieve``, ``caption``, ``tts``, plus ``send``); a second stage of one kind in a
pipeline uses its stage name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MARKS = ("stt_done", "llm_first_token", "first_sentence", "tts_first_audio", "first_audio_sent")

# key -> (mark where its inputs were ready, None: the decision; mark of its output)
Segments = dict[str, tuple[str | None, str]]
CLASSIC: Segments = {
    "stt": (None, "stt_done"),
    "llm": ("stt_done", "first_sentence"),
    "tts": ("first_sentence", "tts_first_audio"),
    "send": ("tts_first_audio", "first_audio_sent"),
}
# Segments that are waiting, not work: kept out of overhead_ms.
WAITS = ("confirm",)


@dataclass
class TurnLatency:
    decision_at: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)  # name -> perf_counter()
    model: dict[str, float] = field(default_factory=dict)  # segment key -> seconds
    # Engine time used by each stage over the whole turn (not only to its first output).
    used: dict[str, float] = field(default_factory=dict)  # segment key -> seconds
    # Other figures of the turn, added to the record as they are (counts, ms).
    figures: dict[str, float] = field(default_factory=dict)
    segments: Segments = field(default_factory=lambda: dict(CLASSIC))
    endpointing_s: float = 0.0  # audio time from speech end to the VAD's decision
    # How the end was decided (server/endpointing.py): endpointing_checks, and with
    # smart_turn endpointing_model_ms and endpointing_probability.
    endpointing: dict[str, float] = field(default_factory=dict)
    speech_end_edge: float | None = None
    first_played_edge: float | None = None
    done_at: float | None = None

    def mark(self, name: str) -> None:
        """Record ``name`` the first time it happens; later calls are ignored."""
        self.marks.setdefault(name, time.perf_counter())

    def model_time(self, stage: str, seconds: float) -> None:
        self.model.setdefault(stage, seconds)

    def use(self, stage: str, seconds: float, *, total: bool = False) -> None:
        """The engine of ``stage`` worked ``seconds`` more (``total``: so far in all)."""
        self.used[stage] = seconds if total else self.used.get(stage, 0.0) + seconds

    @property
    def used_seconds(self) -> float:
        """Engine time the turn's stages used so far, all together."""
        return sum(self.used.values())

    def segment(self, key: str, ready: str | None, end: str) -> None:
        """Declare (or move the start of) the segment ``key``: from mark ``ready``
        (None: the decision) to mark ``end``."""
        self.segments[key] = (ready, end)

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
        out.update(self.endpointing)
        for name in [*MARKS, *sorted(set(self.marks) - set(MARKS))]:
            value = self._since_decision(name)
            if value is not None:
                out[f"{name}_ms"] = value
        if self.done_at is not None:
            out["turn_total_ms"] = (self.done_at - self.decision_at) * 1000.0
        for key, (ready, end) in self.segments.items():
            first = out.get("speculation_started_ms", 0.0)  # where the pipeline began
            start = first if ready is None else out.get(f"{ready}_ms")
            at = out.get(f"{end}_ms")
            if start is None or at is None:
                continue
            out[f"{key}_ms"] = at - start
            if key in WAITS:
                continue
            model = self.model.get(key, 0.0) * 1000.0
            out[f"{key}_model_ms"] = model
            out[f"{key}_overhead_ms"] = at - start - model
        path = self.critical_path()
        if path:
            work = [key for key in path if key not in WAITS]
            out["overhead_ms"] = sum(out[f"{key}_overhead_ms"] for key in work)
        if self.speech_end_edge is not None:
            out["speech_end_edge_s"] = self.speech_end_edge
        if self.first_played_edge is not None:
            out["first_played_edge_s"] = self.first_played_edge
        v2v = self.voice_to_voice_ms
        if v2v is not None:
            out["voice_to_voice_ms"] = v2v
        out.update(self.figures)
        return out

    def critical_path(self) -> list[str]:
        """The segment keys from the decision to the first audio sent, in order (empty
        when the turn sent no audio or a link of the chain is missing)."""
        ends = {end: key for key, (_, end) in self.segments.items() if end in self.marks}
        path: list[str] = []
        mark: str | None = "first_audio_sent"
        while mark is not None:
            key = ends.get(mark)
            if key is None or key in path:
                return []
            path.append(key)
            mark = self.segments[key][0]
            if mark is not None and mark not in self.marks:
                return []
        return path[::-1]
