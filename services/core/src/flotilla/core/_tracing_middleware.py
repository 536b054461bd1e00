"""W3C trace context through Dramatiq messages.

Dramatiq has no official OpenTelemetry instrumentation. Like
opentelemetry-instrumentation-celery (``before_task_publish`` / ``task_prerun``), this
middleware opens a PRODUCER span ``publish <queue>`` around the enqueue and injects its
context into the message options, then in the worker extracts it and opens a CONSUMER span
``process <queue>`` whose parent is that producer span. The consumer span records how long
the message waited in the queue (``messaging.dramatiq.queue_wait_ms``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq.common import q_name
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode

logger = logging.getLogger(__name__)

#: The message option that carries the W3C headers (``traceparent``, ``tracestate``).
TRACE_CONTEXT_OPTION = "trace_context"
QUEUE_WAIT_ATTRIBUTE = "messaging.dramatiq.queue_wait_ms"

_tracer = trace.get_tracer("flotilla.core.messaging")


def _wait_ms(message: Any, now_ms: float) -> float:
    """How long a message sat in the queue: since it was sent, or since it became due."""
    ready_at = max(float(message.message_timestamp), float(message.options.get("eta", 0)))
    return max(0.0, now_ms - ready_at)


class TraceContextMiddleware(dramatiq.Middleware):
    """Carries trace context from producer to consumer with messaging semantic conventions."""

    def __init__(self, system: str = "redis") -> None:
        self.system = system
        self._lock = threading.Lock()
        self._producer_spans: dict[str, Any] = {}
        self._consumer_spans: dict[str, tuple[Any, object]] = {}

    def _attributes(self, message: Any, operation: str) -> dict[str, Any]:
        return {
            "messaging.system": self.system,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.destination.name": q_name(message.queue_name),
            "messaging.message.id": message.message_id,
            "messaging.dramatiq.actor": message.actor_name,
            "messaging.dramatiq.retries": int(message.options.get("retries", 0)),
        }

    # -- producer side -------------------------------------------------------------------
    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        queue = q_name(message.queue_name)
        span = _tracer.start_span(
            f"publish {queue}",
            kind=SpanKind.PRODUCER,
            attributes=self._attributes(message, "publish"),
        )
        if delay:
            span.set_attribute("messaging.dramatiq.delay_ms", int(delay))
        carrier: dict[str, str] = {}
        inject(carrier, context=trace.set_span_in_context(span))
        message.options[TRACE_CONTEXT_OPTION] = carrier
        with self._lock:
            self._producer_spans[message.message_id] = span

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        with self._lock:
            span = self._producer_spans.pop(message.message_id, None)
        if span is not None:
            span.end()

    def abandon_enqueue(self, message: Any, error: BaseException) -> None:
        """End the producer span of an enqueue that raised (Dramatiq has no hook for it)."""
        with self._lock:
            span = self._producer_spans.pop(message.message_id, None)
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    # -- consumer side -------------------------------------------------------------------
    def before_process_message(self, broker: Any, message: Any) -> None:
        parent = extract(message.options.get(TRACE_CONTEXT_OPTION) or {})
        queue = q_name(message.queue_name)
        attributes = self._attributes(message, "process")
        attributes[QUEUE_WAIT_ATTRIBUTE] = round(_wait_ms(message, time.time() * 1000), 3)
        span = _tracer.start_span(
            f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        with self._lock:
            self._consumer_spans[message.message_id] = (span, token)

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            entry = self._consumer_spans.pop(message.message_id, None)
        if entry is None:
            return
        span, token = entry
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        finally:
            span.end()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)
