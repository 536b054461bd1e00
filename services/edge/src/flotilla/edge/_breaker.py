"""A circuit breaker per upstream: closed → open after N failures → half-open probe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    """Stops sending to an upstream that keeps failing, and probes it after a cool-down."""

    failures_to_open: int = 5
    cooldown_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    _probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> float | None:
        """``None`` if a request may go now, else the seconds until the next probe."""
        with self._lock:
            if self.state == "closed":
                return None
            waited = self.clock() - self.opened_at
            if self.state == "open" and waited >= self.cooldown_s:
                self.state = "half-open"
            if self.state == "half-open" and not self._probing:
                self._probing = True
                return None
            return max(0.0, self.cooldown_s - waited) if self.state == "open" else 1.0

    def record_success(self) -> None:
        with self._lock:
            self.state, self.failures, self._probing = "closed", 0, False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half-open" or self.failures >= self.failures_to_open:
                self.state, self.opened_at, self._probing = "open", self.clock(), False
