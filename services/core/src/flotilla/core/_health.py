"""Liveness and readiness, framework-neutral.

``/healthz`` answers as long as the process serves requests, whatever its dependencies do
(liveness never depends on another service: a restart cannot fix a database outage). ``/readyz``
runs the component's checks with a timeout each and is 503 when a *required* one fails: what the
component needs to do its own job (orders-api: its database). Informational checks (orders-api:
the broker, which the outbox stands in for) are reported in the body and never make a
component unready, so one dependency's outage does not empty every Service's endpoints.

Probes are not traced (the health endpoints' server spans are excluded), so their checks run
with instrumentation suppressed: otherwise every probe's database query, Redis PING and
upstream call would become a one-span trace of its own and bury the requests.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

Check = Callable[[], Awaitable[Any] | Any]


@dataclass(frozen=True)
class HealthReport:
    """The outcome of the readiness checks."""

    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``/readyz``."""
        return {"status": "ready" if self.ready else "unready", "checks": self.checks}


async def _run_one(check: Check, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(check):
            await asyncio.wait_for(check(), timeout_s)
        else:
            await asyncio.wait_for(asyncio.to_thread(check), timeout_s)
    except Exception as exc:  # a failed check is a result, not a crash
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def run_checks(
    checks: Mapping[str, Check],
    *,
    informational: Mapping[str, Check] | None = None,
    timeout_s: float = 2.0,
) -> HealthReport:
    """Run every readiness check concurrently.

    Args:
        checks: name → callable (sync or async) that raises when the dependency is not usable;
            any failure makes the report unready.
        informational: checks that are reported (``"required": false``) but never make it
            unready.
        timeout_s: per-check limit.
    """
    extra = dict(informational or {})
    every = {**checks, **extra}
    names = list(every)
    with suppress_instrumentation():  # NOTE: the tasks below copy this context
        results = await asyncio.gather(*(_run_one(every[n], timeout_s) for n in names))
    outcome = {
        name: {**result, "required": name not in extra}
        for name, result in zip(names, results, strict=True)
    }
    ready = all(r["ok"] for r in outcome.values() if r["required"])
    return HealthReport(ready=ready, checks=outcome)
