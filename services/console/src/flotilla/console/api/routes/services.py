"""The services API: rate, errors and latency per service and route, and per queue, over the
last minutes, from the stored spans (what ``/services`` shows)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from flotilla.core import ProblemError

from ..._deps import Store, performance
from ..._performance import WINDOWS_MIN, Performance

router = APIRouter(prefix="/api/services", tags=["services"])


@router.get("")
def services(
    store: Store,
    minutes: Annotated[int, Query(description="the window, in minutes: 1, 5, 15 or 60")] = 5,
) -> Performance:
    """Per service (from its SERVER spans) the whole and each route, and per queue (from its
    CONSUMER spans) messages, retries, queue wait; latencies in milliseconds, rates per
    second over the window, with the slowest and the newest failed trace of each."""
    if minutes not in WINDOWS_MIN:
        raise ProblemError(
            422,
            "Unknown window",
            f"minutes is one of {', '.join(map(str, WINDOWS_MIN))}",
            slug="validation",
            field="minutes",
        )
    return performance(store, minutes)
