"""Redis commands fold into the span they ran under, as SQL statements do (``_statements.py``).

An order's path runs a few Redis commands (the edge's rate limit, Dramatiq's enqueue script,
the depth reader's bookkeeping); a span each made a quarter of an order's spans and told a
reader only that Redis answered. So OpenTelemetry's Redis instrumentation makes its spans on
a tracer provider of its own, whose one processor folds each command that ended well and
faster than ``FLOTILLA_DB_SLOW_STATEMENT_MS`` into its parent span: ``redis.client.operations``
(how many ran under it) and ``redis.client.operations.duration_ms`` (their time together).
A slow or failed command, or one with no live parent, is handed to the process's own span
processors and exported as before. A ``NOSCRIPT`` answer is not a failure here: it is how
redis-py learns that a script must be loaded (the first call after a start, or after Redis
restarted) before it sends it again, so it always folds (however long it took: the first
call of a process also opens its connection); the red span it made was in the first order's
trace on every fresh platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from ._slowness import add_to_span, slow_statement_s

OPERATIONS_ATTRIBUTE = "redis.client.operations"
OPERATIONS_TIME_ATTRIBUTE = "redis.client.operations.duration_ms"
#: the start of the status of a span whose script Redis did not have (redis-py loads it, retries)
_SCRIPT_NOT_LOADED = "NoScriptError"


def _script_not_loaded(span: ReadableSpan) -> bool:
    return (span.status.description or "").startswith(_SCRIPT_NOT_LOADED)


class FoldingProcessor(SpanProcessor):
    """Folds fast, successful spans into their live parent; forwards the others.

    Args:
        forward: the processors a span that is not folded goes to (read at each span, so a
            provider configured later is used).
    """

    def __init__(self, forward: Callable[[], Sequence[SpanProcessor]]) -> None:
        self._forward = forward
        self._parents: dict[int, Any] = {}  # a live span's id → the span it runs under

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = trace.get_current_span(parent_context)
        if parent.is_recording():
            self._parents[span.context.span_id] = parent
        for processor in self._forward():
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        parent = self._parents.pop(span.context.span_id, None)
        took_ns = (span.end_time or 0) - (span.start_time or 0)
        if (
            parent is not None
            and parent.is_recording()
            and (
                _script_not_loaded(span)  # NOTE: however long: a first call opens the connection
                or (
                    span.status.status_code is not StatusCode.ERROR
                    and took_ns < slow_statement_s() * 1e9
                )
            )
        ):
            add_to_span(
                parent,
                count=OPERATIONS_ATTRIBUTE,
                total_ms=OPERATIONS_TIME_ATTRIBUTE,
                seconds=took_ns / 1e9,
            )
            return
        for processor in self._forward():
            processor.on_end(span)

    def shutdown(self) -> None:
        self._parents.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
