"""Dramatiq's messages as OpenTelemetry metrics, by queue and actor.

Dramatiq 2 no longer installs its Prometheus middleware by default, and its multiprocess
endpoint needs a shared folder and has open reliability issues; this middleware records into
the process's own meter provider instead (``flotilla.core._metrics``: a scrape endpoint per
process, OTLP in the cluster). Every instrument carries ``messaging.system``,
``messaging.destination.name`` (the queue, never its delay queue) and
``messaging.dramatiq.actor``; nothing per message, so the label sets stay as few as the
platform's actors.

- ``messaging.client.sent.messages``: messages the application sent (a retry's re-enqueue and
  the worker moving a due message out of the delay queue are not sends);
- ``messaging.client.consumed.messages``: deliveries a worker started processing;
- ``messaging.process.duration`` (s): each attempt, with ``error.type`` when it raised;
- ``messaging.dramatiq.messages.retried``: attempts that raised and were scheduled again;
- ``messaging.dramatiq.messages.failed``: messages given up (retries exhausted, or not
  retryable): dead-lettered;
- ``messaging.dramatiq.messages.in_progress``: attempts running now;
- ``messaging.dramatiq.queue_wait.duration`` (s): from when a delivery could run (its enqueue,
  or the end of its back-off) to when a worker took it.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import dramatiq
from dramatiq.common import q_name
from opentelemetry import metrics

from ._metrics import DURATION_BUCKETS
from ._tracing_middleware import due_move, wait_ms


@cache
def _instruments() -> tuple[Any, ...]:
    """The process's one set of instruments, whichever brokers record into them (one
    instrument per name, so a scrape has one series per label set)."""
    meter = metrics.get_meter("flotilla.core.messaging")
    buckets = list(DURATION_BUCKETS)

    def messages(name: str, description: str) -> Any:
        return meter.create_counter(name, unit="{message}", description=description)

    def seconds(name: str, description: str) -> Any:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=buckets
        )

    sent = messages("messaging.client.sent.messages", "Messages sent.")
    consumed = messages(
        "messaging.client.consumed.messages", "Deliveries a worker started processing."
    )
    duration = seconds("messaging.process.duration", "Duration of one delivery.")
    retried = messages(
        "messaging.dramatiq.messages.retried", "Attempts that raised and were retried."
    )
    failed = messages("messaging.dramatiq.messages.failed", "Messages given up (dead-lettered).")
    in_progress = meter.create_up_down_counter(
        "messaging.dramatiq.messages.in_progress",
        unit="{message}",
        description="Attempts running now.",
    )
    queue_wait = seconds(
        "messaging.dramatiq.queue_wait.duration",
        "Time a delivery waited, once it could run, before a worker took it.",
    )
    return (sent, consumed, duration, retried, failed, in_progress, queue_wait)


class MessagingMetrics(dramatiq.Middleware):
    """Counts and times every message a process sends and processes (see the module)."""

    def __init__(self, system: str = "redis") -> None:
        self.system = system
        instruments = _instruments()
        self.sent, self.consumed, self.duration = instruments[:3]
        self.retried, self.failed, self.in_progress, self.queue_wait = instruments[3:]
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}

    def _labels(self, message: Any) -> dict[str, str]:
        return {
            "messaging.system": self.system,
            "messaging.destination.name": q_name(message.queue_name),
            "messaging.dramatiq.actor": message.actor_name,
        }

    def _finished(self, message: Any) -> float | None:
        """An attempt is over: no longer in progress; when it started (``None``: this
        middleware never saw it start)."""
        with self._lock:
            started = self._running.pop(message.message_id, None)
        if started is not None:
            self.in_progress.add(-1, self._labels(message))
        return started

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        if int(message.options.get("retries", 0)) == 0 and not due_move(message, delay):
            self.sent.add(1, self._labels(message))

    def before_process_message(self, broker: Any, message: Any) -> None:
        labels = self._labels(message)
        self.consumed.add(1, labels)
        self.queue_wait.record(wait_ms(message, time.time() * 1000) / 1000, labels)
        self.in_progress.add(1, labels)
        with self._lock:
            self._running[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._finished(message)
        if started is None:
            return
        labels = self._labels(message)
        if exception is None:
            self.duration.record(time.perf_counter() - started, labels)
            return
        self.duration.record(
            time.perf_counter() - started, {**labels, "error.type": type(exception).__name__}
        )
        # NOTE: this runs after Dramatiq's Retries (see broker_from_url's order), which has
        # either scheduled the message again or failed it.
        (self.failed if message.failed else self.retried).add(1, labels)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._finished(message)
        if message.failed:
            self.failed.add(1, self._labels(message))
