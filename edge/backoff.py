"""Reconnect delays: exponential backoff with jitter, capped."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``initial * factor**n`` capped at ``cap`` seconds, each drawn from the
    upper half of that ("equal jitter": never zero, so a restarted server is not hit by
    every edge at once, and never more than the cap). ``reset`` after a success."""

    def __init__(
        self,
        initial: float = 0.25,
        cap: float = 5.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
