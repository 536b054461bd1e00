"""Service health at a glance: each configured service's ``/readyz``, asked in parallel.

Answers are kept for a moment, so many open pages do not multiply the probes. Locally, the
supervisor's status file (``flotilla up`` writes ``var/local/status.json``) adds what a probe
cannot see: that a process is restarting, how often it restarted and how it last exited.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

ChipState = Literal["ok", "down", "restarting"]


@dataclass(frozen=True)
class Health:
    """One service's (or supervised process's) readiness as last seen."""

    service: str
    ready: bool
    detail: str  # "ready", "HTTP 503", the transport error's name, or the supervisor's word
    state: ChipState = "ok"
    restarts: int = 0


def _supervised(path: Path | None) -> dict[str, dict[str, Any]]:
    """The supervisor's processes by name, or nothing when there is no fresh status file."""
    if path is None:
        return {}
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if time.time() - float(body.get("updated_at", 0)) > 30:
        return {}  # NOTE: a file left behind by a platform that is gone says nothing
    return {p["name"]: p for p in body.get("processes", []) if isinstance(p, dict) and "name" in p}


def _with_supervision(health: Health, process: dict[str, Any] | None) -> Health:
    if process is None:
        return health
    restarts = int(process.get("restarts") or 0)
    code = process.get("last_exit_code")
    history = f"; {restarts} restart{'s' if restarts != 1 else ''}, last exit {code}"
    history = history if restarts else ""
    if process.get("state") in ("restarting", "starting", "exited"):
        return Health(health.service, False, f"{process['state']}{history}", "restarting", restarts)
    return Health(health.service, health.ready, health.detail + history, health.state, restarts)


class HealthBoard:
    """Probes ``services`` (name → base URL) at most every ``max_age_s`` seconds.

    Args:
        services: name → base URL whose ``/readyz`` is asked.
        platform_status: the local supervisor's status file; processes it lists that are not
            running (a worker restarting, say) get a chip of their own.
        max_age_s: how long an answer is reused.
    """

    def __init__(
        self,
        services: dict[str, str],
        *,
        platform_status: Path | None = None,
        max_age_s: float = 2.0,
    ) -> None:
        self.services, self.max_age_s = services, max_age_s
        self.platform_status = platform_status
        self._seen: list[Health] = []
        self._at = 0.0
        self._lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None

    async def check(self) -> list[Health]:
        """The services' readiness, by name (probed again when older than ``max_age_s``)."""
        async with self._lock:
            if time.monotonic() - self._at >= self.max_age_s:
                probed = await asyncio.gather(*map(self._probe, sorted(self.services)))
                supervised = _supervised(self.platform_status)
                seen = [_with_supervision(h, supervised.pop(h.service, None)) for h in probed]
                seen += [
                    _with_supervision(Health(name, True, "running"), process)
                    for name, process in sorted(supervised.items())
                    if process.get("state") != "running"
                ]
                self._seen, self._at = seen, time.monotonic()
            return self._seen

    async def _probe(self, service: str) -> Health:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=1.0)
        url = self.services[service].rstrip("/") + "/readyz"
        try:
            answer = await self._http.get(url)
        except httpx.HTTPError as exc:
            return Health(service, False, type(exc).__name__, "down")
        ok = answer.status_code == 200
        return Health(
            service, ok, "ready" if ok else f"HTTP {answer.status_code}", "ok" if ok else "down"
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
