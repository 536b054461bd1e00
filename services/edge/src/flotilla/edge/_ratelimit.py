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

# KEYS[1] is the caller's address; KEYS[2], when present, the authenticated client. A request
# without valid credentials is paid for by its address. An authenticated one is paid for by its
# client, and refused (without paying) while its address is barred for guessing, so a key that
# is guessed right during a storm of wrong ones gains the guesser nothing.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function gcra(key, interval, tolerance, pay)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if allow_at > now then
    return allow_at - now
  end
  if pay then
    redis.call('SET', key, tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
  end
  return 0
end
local anonymous = tonumber(ARGV[1])
local anonymous_tolerance = tonumber(ARGV[2])
if #KEYS == 1 then
  local wait = gcra(KEYS[1], anonymous, anonymous_tolerance, true)
  return {wait == 0 and 1 or 0, tostring(wait)}
end
local barred = gcra(KEYS[1], anonymous, anonymous_tolerance, false)
if barred > 0 then
  return {0, tostring(barred)}
end
local wait = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), true)
return {wait == 0 and 1 or 0, tostring(wait)}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float


class RedisRateLimiter:
    """``rate`` requests per second per client, with bursts up to ``burst``; requests without
    valid credentials ``anonymous_rate`` per second per address, bursts up to
    ``anonymous_burst``."""

    #: after a failure, how long requests pass without asking Redis
    PAUSE_AFTER_FAILURE_S = 1.0

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        burst: int,
        prefix: str,
        anonymous_rate: float = 5.0,
        anonymous_burst: int = 20,
    ) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._paused_until = 0.0
        self.interval_ms = 1000.0 / rate
        self.tolerance_ms = self.interval_ms * burst
        self.anonymous_interval_ms = 1000.0 / anonymous_rate
        self.anonymous_tolerance_ms = self.anonymous_interval_ms * anonymous_burst
        self.prefix = prefix
        self._script = self.client.register_script(_GCRA)
        self._failing = False

    @property
    def failing(self) -> bool:
        """Whether the last call to Redis failed (requests are let through meanwhile)."""
        return self._failing

    async def check(self, client_id: str | None, address: str) -> RateDecision:
        """Whether a request from ``address`` may go on; ``client_id`` is ``None`` when it
        carries no valid credentials."""
        if self._failing and time.monotonic() < self._paused_until:
            return RateDecision(True, 0.0)  # NOTE: fail open without waiting on Redis again
        keys = [f"{self.prefix}:address:{address}"]
        if client_id is not None:
            keys.append(f"{self.prefix}:client:{client_id}")
        try:
            allowed, wait_ms = await self._script(
                keys=keys,
                args=[
                    self.anonymous_interval_ms,
                    self.anonymous_tolerance_ms,
                    self.interval_ms,
                    self.tolerance_ms,
                ],
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
