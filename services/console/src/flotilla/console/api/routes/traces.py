"""The trace API: the newest traces, and one trace's spans."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from flotilla.core import ProblemError

from ..._deps import Store
from ...schemas import TRACE_ID, LogLevel, LogView, SpanView, TraceDetail, TraceList, TraceSummary

router = APIRouter(prefix="/api/traces", tags=["traces"])


# NOTE: sync handlers: FastAPI runs them in its threadpool, so SQLite never blocks the loop.
@router.get("")
def recent_traces(
    store: Store,
    service: Annotated[
        str | None, Query(max_length=200, description="only traces with a span of it")
    ] = None,
    operation: Annotated[
        str | None, Query(max_length=200, description="root operation contains this")
    ] = None,
    # NOTE: bounded: SQLite integers stop at 2**63 nanoseconds
    min_duration_ms: Annotated[float | None, Query(ge=0, le=10**12)] = None,
    errors: Annotated[bool, Query(description="only traces with an error span")] = False,
    trace_id: Annotated[
        str | None, Query(pattern="^[0-9a-fA-F]{1,32}$", description="a trace id's prefix")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> TraceList:
    """The newest traces first, filtered by service, root operation, duration, errors, id."""
    outlines = store.recent_traces(
        service=service or None,
        operation=operation or None,
        min_duration_ms=min_duration_ms,
        errors_only=errors,
        trace_id=trace_id,
        limit=limit,
    )
    return TraceList(traces=[TraceSummary.of(outline) for outline in outlines])


@router.get(
    "/{trace_id}",
    responses={404: {"description": "no span of this trace is stored"}},
)
def get_trace(
    store: Store,
    trace_id: Annotated[str, Path(description="32 hex digits")],
    level: Annotated[
        LogLevel, Query(description="only log records of this level or above")
    ] = "trace",
) -> TraceDetail:
    """Every stored span of one trace, by start time, and its log records, by time."""
    if not TRACE_ID.match(trace_id):
        raise ProblemError(
            422,
            "Malformed trace id",
            "a trace id is 32 hex digits",
            slug="validation",
            field="trace_id",
        )
    trace_id = trace_id.lower()
    spans = store.trace_spans(trace_id=trace_id)
    if not spans:
        raise ProblemError(
            404,
            "Unknown trace",
            f"no span of trace {trace_id} is stored (never received, or dropped by retention)",
            slug="unknown-trace",
            field="trace_id",
        )
    logs, truncated = store.trace_logs(trace_id=trace_id, min_level=level)
    return TraceDetail(
        trace_id=trace_id,
        spans=[SpanView.of(span) for span in spans],
        logs=[LogView.of(line) for line in logs],
        logs_truncated=truncated,
    )
