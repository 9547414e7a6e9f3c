"""A Parley ``analyse`` engine: how loud the user spoke, as labels with scores.

Found by Parley through the ``parley.engines`` entry point ``analyse.loudness``
(see pyproject.toml); it imports nothing from Parley. The level is the turn's RMS in
dB below full scale; each label's score falls off with the distance (in dB) from its
centre, and the scores sum to 1.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np


class Label:
    """What Parley reads from each result: ``label`` and ``score``."""

    def __init__(self, label: str, score: float) -> None:
        self.label, self.score = label, score


class LoudnessEngine:
    """Options: ``quiet_db`` and ``loud_db``, the centres of the quiet and loud labels
    (dBFS); normal is half way between."""

    def __init__(self, quiet_db: float = -40.0, loud_db: float = -12.0) -> None:
        self.model = f"rms {quiet_db:g}..{loud_db:g} dBFS"
        self.centres = {"quiet": quiet_db, "normal": (quiet_db + loud_db) / 2, "loud": loud_db}

    def load(self) -> None:
        pass  # nothing to load; a real engine opens its model here

    def level_db(self, pcm: bytes) -> float:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
        rms = math.sqrt(float(np.mean(samples**2))) if samples.size else 0.0
        return 20 * math.log10(max(rms, 1e-6))

    async def run(self, request: object) -> list[Label]:
        audio = getattr(request, "audio", None)
        if not audio:
            raise ValueError("the loudness engine takes the turn's audio")
        level = await asyncio.to_thread(self.level_db, audio)
        weights = {k: math.exp(-abs(level - c) / 6.0) for k, c in self.centres.items()}
        total = sum(weights.values())
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])
        return [Label(name, weight / total) for name, weight in ranked]

    def close(self) -> None:
        pass
