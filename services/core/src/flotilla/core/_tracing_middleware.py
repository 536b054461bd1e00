"""W3C trace context through Dramatiq messages, across retries and delays.

Dramatiq has no official OpenTelemetry instrumentation. Like
opentelemetry-instrumentation-celery (``before_task_publish`` / ``task_prerun``), this
middleware opens a PRODUCER span ``publish <queue>`` around the enqueue and injects its
context into the message options, then in the worker extracts it and opens a CONSUMER span
``process <queue>`` whose parent is that producer span.

Every attempt of a message belongs to the trace that caused it:

- The middleware must be the *first* of the broker's middleware (``broker_from_url`` puts it
  there). Dramatiq runs ``after_*`` hooks in reverse order, so the CONSUMER span of a failed
  attempt is still current when the Retries middleware re-enqueues the message: the retry's
  PRODUCER span is a child of the attempt that failed, and the next attempt's CONSUMER a
  child of that PRODUCER.
- A delayed message (a retry's back-off, or ``send_with_options(delay=…)``) waits in the
  delay queue; when it is due the worker moves it to its queue with a plain enqueue, outside
  any span. That move is not a publish of the application: the message keeps the context it
  carries, and no new span (let alone a new root) is made.
- The CONSUMER span records the attempt (``messaging.dramatiq.attempt``, 1 for the first), the
  time the message waited once it could run (``messaging.dramatiq.queue_wait_ms``) and, apart
  from it, the back-off it was delayed by (``messaging.dramatiq.delay_ms``).
- A PRODUCER span is always ended: an enqueue that raises ends it as an error
  (:meth:`TraceContextMiddleware.abandon_enqueue`, called by the brokers ``broker_from_url``
  builds, since Dramatiq has no hook for a failed enqueue).
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
ATTEMPT_ATTRIBUTE = "messaging.dramatiq.attempt"
DELAY_ATTRIBUTE = "messaging.dramatiq.delay_ms"
#: When this delivery was enqueued and when it became due (ms since the epoch). Our own
#: options: Dramatiq drops ``eta`` when it moves a due message out of the delay queue.
_ENQUEUED_AT = "flotilla_enqueued_at"
_DUE_AT = "flotilla_due_at"

_tracer = trace.get_tracer("flotilla.core.messaging")


def _now_ms() -> float:
    return time.time() * 1000


def wait_ms(message: Any, now_ms: float) -> float:
    """How long a message sat in the queue once it could run (after any back-off)."""
    enqueued = float(message.options.get(_ENQUEUED_AT, message.message_timestamp))
    ready_at = max(enqueued, float(message.options.get(_DUE_AT) or 0))
    return max(0.0, now_ms - ready_at)


def due_move(message: Any, delay: int | None) -> bool:
    """Whether an enqueue (seen after this middleware's ``before_enqueue``) is the worker
    moving a due message out of the delay queue, not a send: the move keeps the delivery's
    due time, which a send without delay drops."""
    return not delay and _DUE_AT in message.options


def _delay_ms(message: Any) -> float:
    due, enqueued = message.options.get(_DUE_AT), message.options.get(_ENQUEUED_AT)
    return max(0.0, float(due) - float(enqueued)) if due and enqueued else 0.0


class TraceContextMiddleware(dramatiq.Middleware):
    """Carries trace context from producer to consumer with messaging semantic conventions."""

    def __init__(self, system: str = "redis") -> None:
        self.system = system
        self._lock = threading.Lock()
        # NOTE: an enqueue runs start to end on one thread, so the producer span it opened
        # is found again there (even for a message object Dramatiq copied in between).
        self._enqueuing = threading.local()
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

    def _pending(self) -> list[Any]:
        stack: list[Any] | None = getattr(self._enqueuing, "spans", None)
        if stack is None:
            stack = self._enqueuing.spans = []
        return stack

    # -- producer side -------------------------------------------------------------------
    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        carried = message.options.get(TRACE_CONTEXT_OPTION)
        in_span = trace.get_current_span().get_span_context().is_valid
        if not delay and carried and not in_span and _DUE_AT in message.options:
            # NOTE: the worker moving a due message out of the delay queue: it is the same
            # delivery, so it keeps its context and its timestamps (no span, no new root).
            self._pending().append(None)
            return
        now = _now_ms()
        message.options[_ENQUEUED_AT] = int(now)
        if delay:
            message.options[_DUE_AT] = int(now + delay)
        else:
            message.options.pop(_DUE_AT, None)
        # NOTE: outside any span (a retry scheduled after the consumer span ended, say), the
        # context the message already carries is the parent, never a new root.
        parent = None if in_span or not carried else extract(carried)
        span = _tracer.start_span(
            f"publish {q_name(message.queue_name)}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes=self._attributes(message, "publish"),
        )
        if delay:
            span.set_attribute(DELAY_ATTRIBUTE, int(delay))
        fresh: dict[str, str] = {}
        inject(fresh, context=trace.set_span_in_context(span))
        message.options[TRACE_CONTEXT_OPTION] = fresh
        # NOTE: current while the broker enqueues, so its Redis commands are the span's (and
        # fold into it: _folding.py), not children of a context stored long ago
        token = otel_context.attach(trace.set_span_in_context(span))
        self._pending().append((span, token))

    def _ended_enqueue(self) -> Any:
        pending = self._pending()
        entry = pending.pop() if pending else None
        if entry is None:
            return None
        span, token = entry
        otel_context.detach(token)
        return span

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        span = self._ended_enqueue()
        if span is not None:
            span.end()

    def abandon_enqueue(self, message: Any, error: BaseException) -> None:
        """End the producer span of an enqueue that raised (Dramatiq has no hook for it)."""
        span = self._ended_enqueue()
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    # -- consumer side -------------------------------------------------------------------
    def before_process_message(self, broker: Any, message: Any) -> None:
        parent = extract(message.options.get(TRACE_CONTEXT_OPTION) or {})
        queue = q_name(message.queue_name)
        attributes = self._attributes(message, "process")
        attributes[ATTEMPT_ATTRIBUTE] = int(message.options.get("retries", 0)) + 1
        attributes[QUEUE_WAIT_ATTRIBUTE] = round(wait_ms(message, _now_ms()), 3)
        attributes[DELAY_ATTRIBUTE] = round(_delay_ms(message), 3)
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
