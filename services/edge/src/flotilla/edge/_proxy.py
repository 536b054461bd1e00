"""The edge's proxy: authenticate, rate-limit, bound, forward, retry, break circuits.

The decisions are plain functions and objects (routing, auth, breaker, headers); this module
only translates between HTTP and them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import falcon
import falcon.asgi

from flotilla.core import FieldError, Problem

from ._auth import Authenticator, AuthError, Client
from ._breaker import STATE_VALUES, CircuitBreaker
from ._headers import downstream_response_headers, upstream_request_headers
from ._metrics import EdgeMetrics
from ._ratelimit import RedisRateLimiter
from ._routing import resolve
from ._settings import EdgeSettings
from ._upstream import Upstream, UpstreamAnswer, UpstreamTimeoutError, UpstreamTransportError

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})


class EdgeProblem(Exception):
    """An answer the edge makes itself, as an RFC 9457 problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        errors = [FieldError(field=field, message=detail)] if field else None
        self.problem = Problem(
            type=f"https://flotilla.dev/problems/{slug}",
            title=title,
            status=status,
            detail=detail,
            errors=errors,
        )
        self.headers = headers or {}


class Proxy:
    """Falcon sink that forwards every routed request to its upstream."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        authenticator: Authenticator,
        limiter: RedisRateLimiter,
        http: Upstream,
        metrics: EdgeMetrics,
    ) -> None:
        self.settings, self.authenticator, self.limiter = settings, authenticator, limiter
        self.http, self.metrics = http, metrics
        self.breakers = {
            route.name: CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
            for route in settings.routes
        }
        for name, breaker in self.breakers.items():
            self._observe(name, breaker)

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **_: Any
    ) -> None:
        assert resp is not None  # NOTE: None only for WebSocket sinks
        # NOTE: credentials first, so an anonymous caller learns nothing about the routes.
        client = self._authenticate(req)
        destination = resolve(self.settings.routes, req.path, req.query_string)
        if destination is None:
            raise EdgeProblem(
                404,
                "No such route",
                f"nothing is served at {req.path}",
                slug="no-route",
                field="path",
            )
        req.context.route = destination.route.name
        decision = await self.limiter.check(client.id)
        if not decision.allowed:
            self.metrics.rate_limited.inc()
            retry_after = str(max(1, math.ceil(decision.retry_after_s)))
            raise EdgeProblem(
                429,
                "Too many requests",
                f"slow down; retry in {retry_after} s",
                slug="rate-limited",
                headers={"Retry-After": retry_after},
            )
        body = await self._read_body(req)
        headers = upstream_request_headers(
            req.headers.items(),
            client_ip=req.remote_addr or "",
            scheme=req.scheme,
            host=req.netloc,  # with the port, as the client addressed the edge
            client_id=client.id,
            request_id=req.context.request_id,
            trust_forwarded=self.settings.trust_forwarded,
        )
        upstream = await self._forward(
            destination.route.name, req.method, destination.url, headers, body
        )
        resp.status = upstream.status
        for name, value in downstream_response_headers(upstream.headers):
            resp.append_header(name, value)
        resp.data = upstream.content

    def _authenticate(self, req: falcon.asgi.Request) -> Client:
        try:
            return self.authenticator.authenticate(
                req.get_header("Authorization"), req.get_header("X-API-Key")
            )
        except AuthError as exc:
            raise EdgeProblem(
                401,
                "Unauthorized",
                str(exc),
                slug="unauthorized",
                field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="flotilla"'},
            ) from exc

    async def _read_body(self, req: falcon.asgi.Request) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = EdgeProblem(
            413,
            "Request body too large",
            f"at most {limit} bytes",
            slug="body-too-large",
            field="body",
        )
        if req.content_length is not None and req.content_length > limit:
            raise too_large
        chunks, size = [], 0
        # NOTE: count what actually arrives; Content-Length may be absent (chunked) or lie.
        async for chunk in req.stream:
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _forward(
        self, name: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> UpstreamAnswer:
        breaker = self.breakers[name]
        self._refuse_while_open(name, breaker)
        attempts = 1 + (self.settings.retries if method in IDEMPOTENT else 0)
        for attempt in range(1, attempts + 1):
            try:
                answer = await self.http.request(method, url, headers, body)
            except UpstreamTimeoutError as exc:
                # NOTE: a timeout is not retried: the client already waited the whole
                # upstream timeout, and a retry would double it behind its back.
                self._failed(breaker, name, "timeout")
                raise EdgeProblem(
                    504,
                    "Upstream timeout",
                    f"{name} did not answer within {self.settings.upstream_timeout_s:g} s",
                    slug="upstream-timeout",
                ) from exc
            except UpstreamTransportError as exc:
                self._failed(breaker, name, "unreachable")
                if self._may_retry(breaker, attempt, attempts):
                    await asyncio.sleep(0.05 * attempt)
                    continue
                # NOTE: 503 (as Envoy answers a connect failure): this route is unavailable for
                # now, the others are not, and the client may try again.
                raise EdgeProblem(
                    503,
                    "Upstream unavailable",
                    f"{name} could not be reached",
                    slug="upstream-unreachable",
                    headers={"Retry-After": "1"},
                ) from exc
            if answer.status in RETRY_STATUSES:
                self._failed(breaker, name, str(answer.status))
                if self._may_retry(breaker, attempt, attempts):
                    await asyncio.sleep(0.05 * attempt)
                    continue
            else:
                self._succeeded(breaker, name)
            # NOTE: the upstream's own answer (a 503 problem included) goes back as it is.
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _may_retry(breaker: CircuitBreaker, attempt: int, attempts: int) -> bool:
        # NOTE: once the circuit is open (this request's failures may have opened it), the
        # remaining attempts would only hammer an upstream the edge has given up on.
        return attempt < attempts and breaker.state != "open"

    def _refuse_while_open(self, name: str, breaker: CircuitBreaker) -> None:
        before = breaker.state
        wait = breaker.allow()
        if breaker.state != before:
            self._observe(name, breaker)
        if wait is None:
            return
        retry_after = str(max(1, math.ceil(wait)))
        raise EdgeProblem(
            503,
            "Upstream unavailable",
            f"{name} is failing; the edge stopped calling it for a while",
            slug="circuit-open",
            headers={"Retry-After": retry_after},
        )

    def _succeeded(self, breaker: CircuitBreaker, name: str) -> None:
        if breaker.state != "closed" or breaker.failures:
            breaker.record_success()
            self._observe(name, breaker)

    def _failed(self, breaker: CircuitBreaker, name: str, kind: str) -> None:
        breaker.record_failure()
        self._observe(name, breaker)
        self.metrics.upstream_errors.labels(name, kind).inc()

    def _observe(self, name: str, breaker: CircuitBreaker) -> None:
        self.metrics.breaker_state.labels(name).set(STATE_VALUES[breaker.state])
