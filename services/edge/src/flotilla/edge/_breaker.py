"""A circuit breaker per upstream: closed → open after N failures → half-open probe.

A plain state machine with an injectable clock, so its transitions are tested without
sleeping. While open, every request is refused at once (the caller gets 503 and
``Retry-After``); after the cool-down one request is let through as a probe: its success
closes the circuit, its failure opens it again. A probe whose outcome is never recorded (the
client went away mid-request) does not wedge the breaker: after another cool-down a new probe
is allowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]

#: How ``edge_circuit_state`` reports each state.
STATE_VALUES: dict[BreakerState, int] = {"closed": 0, "half-open": 1, "open": 2}


@dataclass
class CircuitBreaker:
    """Stops sending to an upstream that keeps failing, and probes it after a cool-down.

    Args:
        failures_to_open: consecutive failures that open the circuit.
        cooldown_s: how long the circuit stays open before a probe.
        clock: monotonic seconds (injectable for tests).
    """

    failures_to_open: int = 5
    cooldown_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    _probe_started: float | None = None
    # NOTE: granian may run the app on several threads; the lock keeps transitions whole.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> float | None:
        """``None`` if a request may go now, else the seconds the caller should wait."""
        if self.state == "closed":  # PERF: the common case takes no lock
            return None
        with self._lock:
            now = self.clock()
            if self.state == "open":
                waited = now - self.opened_at
                if waited < self.cooldown_s:
                    return self.cooldown_s - waited
                self.state = "half-open"
            if self.state == "half-open":
                stale = (
                    self._probe_started is not None and now - self._probe_started >= self.cooldown_s
                )
                if self._probe_started is None or stale:
                    self._probe_started = now
                    return None
                return max(1.0, self.cooldown_s - (now - self._probe_started))
            return None

    def record_success(self) -> None:
        """The upstream answered: close the circuit and forget past failures."""
        if self.state == "closed" and self.failures == 0:  # PERF: nothing to change
            return
        with self._lock:
            self.state, self.failures, self._probe_started = "closed", 0, None

    def record_failure(self) -> None:
        """The upstream failed (unreachable, timed out, or 502/503/504)."""
        with self._lock:
            self.failures += 1
            if self.state == "half-open" or self.failures >= self.failures_to_open:
                self.state, self.opened_at, self._probe_started = "open", self.clock(), None
