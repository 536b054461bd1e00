"""The pool API: each autoscaled worker pool and its recent decisions (what ``/pools`` shows)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..._decisions import Decision
from ..._deps import Store

router = APIRouter(prefix="/api/pools", tags=["pools"])


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "time": d.time,
        "action": d.action,
        "reason": d.reason,
        "replicas": d.current,
        "desired": d.desired,
        "depth": d.depth,
        "in_flight": d.in_flight,
    }


@router.get("")
def pools(
    store: Store,
    minutes: Annotated[int, Query(ge=1, le=24 * 60, description="how far back")] = 15,
) -> dict[str, list[dict[str, Any]]]:
    """``{"pools": [{"name", "service", "queues", "replicas", "desired", "min", "max", "depth",
    "in_flight", "last_decision", "changes": [...]}]}``, by name."""
    views = store.pools(since_ns=time.time_ns() - minutes * 60 * 1_000_000_000)
    return {
        "pools": [
            {
                "name": v.name,
                "service": v.latest.service,
                "queues": list(v.latest.queues),
                "replicas": v.latest.current,
                "desired": v.latest.desired,
                "min": v.latest.min,
                "max": v.latest.max,
                "depth": v.latest.depth,
                "in_flight": v.latest.in_flight,
                "last_decision": v.latest.reason,
                "changes": [_decision(d) for d in v.changes],
            }
            for v in views
        ]
    }
