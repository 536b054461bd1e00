"""What an engine's SQL statements leave in the signals: a count and a time on the span they
ran under, a span of their own only when one was slow or failed, and a metric.

A span per statement made half of an order's 43 spans (each exported, shipped, stored and
drawn) and told a reader little: a transaction's statements are the same each time. So a
statement adds to the current span (the request's or the message's) ``db.client.operations``
(how many ran under it) and ``db.client.operations.duration_ms`` (their time together); one
that runs at least ``FLOTILLA_DB_SLOW_STATEMENT_MS`` (50 ms by default) or fails gets a span of
its own too, with its text, timed as it ran; every statement is in the
``db.client.operation.duration`` histogram by database, operation and error.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event

from ._slowness import (
    DEFAULT_SLOW_STATEMENT_MS,
    SLOW_STATEMENT_VARIABLE,
    add_to_span,
    slow_statement_s,
)
from ._telemetry import telemetry_enabled

__all__ = [
    "DEFAULT_SLOW_STATEMENT_MS",
    "SLOW_STATEMENT_VARIABLE",
    "record_db_operations",
    "slow_statement_s",
]

#: what a statement adds to the span it ran under
OPERATIONS_ATTRIBUTE = "db.client.operations"
OPERATIONS_TIME_ATTRIBUTE = "db.client.operations.duration_ms"

#: The first keyword of a statement, as ``db.operation.name``; any other is ``OTHER``, so the
#: metric's labels stay a small, fixed set.
_OPERATIONS = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "WITH", "PRAGMA"}
)
_STARTED = "flotilla_db_started"
tracer = trace.get_tracer("flotilla.core.database")


def _operation_of(statement: str) -> str:
    word = statement.lstrip()[:10].split(None, 1)
    name = word[0].upper() if word else ""
    return name if name in _OPERATIONS else "OTHER"


@cache
def _operation_duration() -> Any:
    """The process's one ``db.client.operation.duration`` (every engine records into it: one
    instrument, so a scrape has one series per label set)."""
    from opentelemetry import metrics

    from ._metrics import DURATION_BUCKETS

    return metrics.get_meter("flotilla.core.database").create_histogram(
        "db.client.operation.duration",
        unit="s",
        description="Duration of database client operations.",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )


def record_db_operations(engine: sa.Engine) -> None:
    """Record every statement ``engine`` runs as the module docstring says: metric labels
    ``db.system.name``, ``db.namespace`` (the database: a SQLite file's name without its
    suffix), ``db.operation.name``, and ``error.type`` for one that failed."""
    if not telemetry_enabled():
        return
    histogram = _operation_duration()
    slow_s = slow_statement_s()
    system = {"postgresql": "postgresql", "sqlite": "sqlite"}.get(
        engine.url.get_backend_name(), "other_sql"
    )
    database = engine.url.database or ""
    namespace = Path(database).stem if system == "sqlite" else database

    def attributes(statement: str) -> dict[str, str]:
        return {
            "db.system.name": system,
            "db.namespace": namespace,
            "db.operation.name": _operation_of(statement),
        }

    def done(statement: str, started: tuple[float, int], error: BaseException | None) -> None:
        seconds = time.perf_counter() - started[0]
        labels = attributes(statement)
        if error is not None:
            labels["error.type"] = type(error).__name__
        histogram.record(seconds, labels)
        add_to_span(
            trace.get_current_span(),
            count=OPERATIONS_ATTRIBUTE,
            total_ms=OPERATIONS_TIME_ATTRIBUTE,
            seconds=seconds,
        )
        if error is None and seconds < slow_s:
            return
        # NOTE: a span of its own, started when the statement did and as long as it ran
        span = tracer.start_span(
            f"{labels['db.operation.name']} {namespace}".strip(),
            kind=SpanKind.CLIENT,
            start_time=started[1],
            attributes={**labels, "db.query.text": statement[:2000]},
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:300]))
        span.end(end_time=started[1] + int(seconds * 1e9))

    @event.listens_for(engine, "before_cursor_execute")
    def before(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        setattr(context, _STARTED, (time.perf_counter(), time.time_ns()))

    @event.listens_for(engine, "after_cursor_execute")
    def after(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        started = getattr(context, _STARTED, None)
        if started is not None:
            done(statement, started, None)

    @event.listens_for(engine, "handle_error")
    def failed(error: Any) -> None:
        started = getattr(error.execution_context, _STARTED, None)
        if started is not None and error.statement is not None:
            done(error.statement, started, error.original_exception)
