"""Fault injection: what the stand-in does wrong on purpose, changeable while it runs.

Like the OpenTelemetry demo's feature flags, so people can watch retries, back-off and
idempotency at work in the console: extra latency, a share of charges refused before
anything happens (503), a share made and then answered 503 as if the reply was lost, and a
number of charges to refuse next (deterministic, for tests).
"""

from __future__ import annotations

import random
import threading
from typing import Literal

from .schemas import Faults

Verdict = Literal["serve", "refuse", "lose-reply"]


class FaultInjector:
    """The current faults, and the draw for each charge (thread-safe)."""

    def __init__(self, faults: Faults, *, rng: random.Random | None = None) -> None:
        self._faults = faults
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def replace(self, faults: Faults) -> Faults:
        with self._lock:
            self._faults = faults
            return faults

    def draw(self) -> Verdict:
        """What to do with the next charge."""
        with self._lock:
            faults = self._faults
            if faults.fail_next:
                self._faults = faults.model_copy(update={"fail_next": faults.fail_next - 1})
                return "refuse"
            roll = self._rng.random()
        if roll < faults.failure_rate:
            return "refuse"
        if roll < faults.failure_rate + faults.lost_reply_rate:
            return "lose-reply"
        return "serve"
