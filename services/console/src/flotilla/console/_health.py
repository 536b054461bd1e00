"""Service health at a glance: each configured service's ``/readyz``, asked in parallel.

Answers are kept for a moment, so many open pages do not multiply the probes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Health:
    """One service's readiness as last seen."""

    service: str
    ready: bool
    detail: str  # "ready", "HTTP 503", or the transport error's name


class HealthBoard:
    """Probes ``services`` (name → base URL) at most every ``max_age_s`` seconds."""

    def __init__(self, services: dict[str, str], *, max_age_s: float = 2.0) -> None:
        self.services, self.max_age_s = services, max_age_s
        self._seen: list[Health] = []
        self._at = 0.0
        self._lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None

    async def check(self) -> list[Health]:
        """The services' readiness, by name (probed again when older than ``max_age_s``)."""
        async with self._lock:
            if time.monotonic() - self._at >= self.max_age_s:
                self._seen = list(await asyncio.gather(*map(self._probe, sorted(self.services))))
                self._at = time.monotonic()
            return self._seen

    async def _probe(self, service: str) -> Health:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=1.0)
        url = self.services[service].rstrip("/") + "/readyz"
        try:
            answer = await self._http.get(url)
        except httpx.HTTPError as exc:
            return Health(service, False, type(exc).__name__)
        ok = answer.status_code == 200
        return Health(service, ok, "ready" if ok else f"HTTP {answer.status_code}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
