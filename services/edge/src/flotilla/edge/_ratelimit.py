"""A per-client rate limit shared by every edge replica through Redis (GCRA, one round trip).

The generic cell rate algorithm keeps one timestamp per client (the theoretical arrival time),
so the state is tiny and a request costs one script call. Redis's own clock is used so that
replicas with skewed clocks agree. If Redis is unreachable the edge lets requests through
(fail open) and says so in its logs and metrics: an outage of the limiter should not become an
outage of the platform. After a failure the limiter leaves Redis alone for a moment, so a
Redis that hangs (rather than refuses) costs one request its timeout, not every request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as redis

logger = logging.getLogger(__name__)

_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, '0'}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float


class RedisRateLimiter:
    """``rate`` requests per second per client, with bursts up to ``burst``."""

    #: after a failure, how long requests pass without asking Redis
    PAUSE_AFTER_FAILURE_S = 1.0

    def __init__(self, url: str, *, rate: float, burst: int, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._paused_until = 0.0
        self.interval_ms = 1000.0 / rate
        self.tolerance_ms = self.interval_ms * burst
        self.prefix = prefix
        self._script = self.client.register_script(_GCRA)
        self._failing = False

    @property
    def failing(self) -> bool:
        """Whether the last call to Redis failed (requests are let through meanwhile)."""
        return self._failing

    async def check(self, client_id: str) -> RateDecision:
        if self._failing and time.monotonic() < self._paused_until:
            return RateDecision(True, 0.0)  # NOTE: fail open without waiting on Redis again
        try:
            allowed, wait_ms = await self._script(
                keys=[f"{self.prefix}:{client_id}"], args=[self.interval_ms, self.tolerance_ms]
            )
        except (redis.RedisError, OSError) as exc:
            if not self._failing:
                logger.warning(
                    "rate limiter unreachable; letting requests through", extra={"error": str(exc)}
                )
            self._failing = True
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE_S
            return RateDecision(True, 0.0)
        self._failing = False
        return RateDecision(bool(int(allowed)), float(wait_ms) / 1000)

    async def ping(self) -> None:
        """Reach Redis and load the script there, so the first request's EVALSHA does not
        fail with NOSCRIPT (a red span in its trace) before redis-py falls back to EVAL."""
        await self.client.script_load(_GCRA)  # type: ignore[no-untyped-call]  # untyped in the stubs

    async def close(self) -> None:
        await self.client.aclose()  # type: ignore[attr-defined]  # stubs predate aclose
