from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from flotilla.core import ProblemError

from ..._store import SpanStore

router = APIRouter(prefix="/api/traces", tags=["traces"])
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@router.get("")
def recent_traces(
    request: Request,
    service: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The newest traces, optionally those that touched ``service``."""
    store: SpanStore = request.app.state.store
    return {"traces": store.recent_traces(service=service, limit=limit)}


@router.get("/{trace_id}")
def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    """Every span of one trace, by start time."""
    trace_id = trace_id.lower()
    if not TRACE_ID.match(trace_id):
        raise ProblemError(
            422,
            "Malformed trace id",
            "a trace id is 32 hex digits",
            slug="validation",
            field="trace_id",
        )
    store: SpanStore = request.app.state.store
    spans = store.trace(trace_id)
    if not spans:
        raise ProblemError(
            404,
            "Unknown trace",
            f"no spans of trace {trace_id} are stored",
            slug="unknown-trace",
            field="trace_id",
        )
    return {"trace_id": trace_id, "spans": spans}
