"""Back-pressure: orders-api accepts an order only while the workers can finish it in time.

Nothing else stops acceptance from outrunning fulfilment: under a sustained overload the
``orders`` queue grows without bound, and an order accepted late waits longer than its
reservation hold (600 s) and fails after the customer was told 202. So before it reserves
anything, ``POST /orders`` asks :class:`Admission`, which keeps a fresh view of the queue (a
thread reads it every ``every_s``, not every request): when its oldest ready message has
waited longer than ``max_wait_s`` (default 30 s, far below the hold) or it holds more than
``max_depth`` messages, the order is refused with 503 and ``Retry-After`` (a client retrying
with its Idempotency-Key gets exactly one order once there is room). The autoscaler keeps
scaling the workers on the same queue meanwhile.

It fails open: while the broker cannot be read, orders are accepted (the outbox holds them
until it is back, as before), and the refusal never depends on a view older than
``STALE_AFTER_S``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from opentelemetry.instrumentation.utils import suppress_instrumentation

logger = logging.getLogger(__name__)

#: a view of the queue older than this is not acted on (the reads are failing)
STALE_AFTER_S = 5.0


@dataclass(frozen=True)
class Backlog:
    """The queue as last read: ready messages and how long the oldest of them has waited
    (None when it cannot tell: empty, or a broker that does not say)."""

    depth: int
    oldest_wait_s: float | None
    read_at: float


def read_backlog(broker: dramatiq.Broker, queue: str, now_ms: Callable[[], float]) -> Backlog:
    """The ``queue``'s backlog on ``broker`` (Redis: its list and the oldest message's
    timestamp; RabbitMQ: its ready count)."""
    client: Any = getattr(broker, "client", None)
    if client is not None:  # Redis: Dramatiq's layout, oldest ready id first in the list
        key = f"{broker.namespace}:{queue}"  # type: ignore[attr-defined]
        depth, oldest = client.pipeline(transaction=False).llen(key).lindex(key, 0).execute()
        wait = None
        if oldest is not None:
            body = client.hget(f"{key}.msgs", oldest)
            if body is not None:
                sent = json.loads(body).get("message_timestamp")
                wait = max(0.0, (now_ms() - float(sent)) / 1000) if sent else None
        return Backlog(int(depth), wait, time.monotonic())
    ready, _, _ = broker.get_queue_message_counts(queue)  # type: ignore[attr-defined]
    return Backlog(int(ready), None, time.monotonic())


class Admission:
    """Whether to accept an order now (see the module docstring).

    Args:
        broker: the broker the orders go through.
        queue: the queue the workers consume (``orders``).
        max_wait_s: refuse while the oldest ready message has waited longer (0: never).
        max_depth: refuse while the queue holds more messages (0: never).
        every_s: how often the queue is read.
    """

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        queue: str,
        max_wait_s: float,
        max_depth: int,
        every_s: float = 0.25,
    ) -> None:
        self.broker, self.queue = broker, queue
        self.max_wait_s, self.max_depth, self.every_s = max_wait_s, max_depth, every_s
        self.backlog: Backlog | None = None
        self._failing: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="admission", daemon=True)

    @property
    def enabled(self) -> bool:
        return bool(self.max_wait_s or self.max_depth)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def refresh(self) -> None:
        """Read the queue now (the thread does it every ``every_s``)."""
        try:
            # NOTE: four reads a second are no one's trace (root spans of Redis calls)
            with suppress_instrumentation():
                self.backlog = read_backlog(self.broker, self.queue, lambda: time.time() * 1000)
        except Exception as exc:  # NOTE: the broker away: fail open, say it once
            reason = f"{type(exc).__name__}: {exc}"
            if reason != self._failing:
                logger.warning("cannot read the orders queue; accepting orders", exc_info=False,
                               extra={"reason": reason[:200]})  # fmt: skip
                self._failing = reason
            return
        self._failing = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.every_s)

    def refusal(self) -> str | None:
        """Why an order must wait now, or None to accept it."""
        backlog = self.backlog
        if backlog is None or time.monotonic() - backlog.read_at > STALE_AFTER_S:
            return None
        if self.max_wait_s and (backlog.oldest_wait_s or 0) > self.max_wait_s:
            return (
                f"the orders queue's oldest order has waited {backlog.oldest_wait_s:.0f} s "
                f"(more than {self.max_wait_s:g} s): the workers are behind"
            )
        if self.max_depth and backlog.depth > self.max_depth:
            return f"the orders queue holds {backlog.depth} orders (more than {self.max_depth})"
        return None
