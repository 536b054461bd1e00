"""The edge's proxy: check the path, authenticate, rate-limit, route, authorise, bound,
forward, retry, break circuits.

The decisions are plain functions and objects (paths, routing, auth, breaker, headers); this
module only translates between HTTP and them. The order matters: a path is checked before
anything else (it is pure and cheap), credentials are verified (CPU only, bounded) and the rate
limit decides in one round trip before anything is routed, so an anonymous caller learns
nothing about the routes and pays for every guess.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import falcon
import falcon.asgi

from flotilla.core import (
    DEPENDENCY_FAILURE_HEADER,
    ProblemError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_problem,
)

from ._auth import Authenticator, AuthError, Client
from ._breaker import STATE_VALUES, CircuitBreaker
from ._headers import (
    downstream_response_headers,
    public_location,
    retry_after_s,
    upstream_request_headers,
)
from ._metrics import EdgeMetrics
from ._paths import UnsafePath, parse_path
from ._ratelimit import RedisRateLimiter
from ._routing import Destination, MethodNotAllowed, NoRoute, resolve
from ._settings import EdgeSettings
from ._trace_boundary import name_route
from ._upstream import Upstream, UpstreamAnswer

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
#: An upstream asking to be left alone longer than this gets its answer passed on, not retried.
MAX_RETRY_WAIT_S = 2.0


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
        # NOTE: one breaker per upstream (what fails is the upstream, not a route to it)
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
            for name in sorted({route.upstream for route in settings.routes})
        }
        for name, breaker in self.breakers.items():
            self._observe(name, breaker)

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **_: Any
    ) -> None:
        assert resp is not None  # NOTE: None only for WebSocket sinks
        segments = self._segments(req)
        client = await self._admit(req)
        destination = self._route(req, segments, client)
        req.context.route = destination.route.name
        name_route(req.method, destination.route.prefix + destination.rule.path)
        body = await self._read_body(req)
        headers = upstream_request_headers(
            req.headers.items(),
            client_ip=req.remote_addr or "",
            scheme=req.scheme,
            host=req.netloc,  # with the port, as the client addressed the edge
            client_id=client.id,
            client_scopes=client.scopes,
            request_id=req.context.request_id,
            trust_forwarded=self.settings.trust_forwarded,
        )
        query = req.scope.get("query_string", b"").decode("latin-1")
        upstream_base = self.settings.upstreams[destination.route.upstream]
        url = upstream_base + destination.path + (f"?{query}" if query else "")
        # NOTE: HEAD goes upstream as GET (FastAPI routes no HEAD); Falcon drops the body and
        # keeps the Content-Length a GET would have had.
        method = "GET" if req.method == "HEAD" else req.method
        upstream = await self._forward(destination.route.upstream, method, url, headers, body)
        resp.status = upstream.status
        for name, value in downstream_response_headers(upstream.headers):
            if name.lower() in ("location", "content-location"):
                value = public_location(value, destination.route, upstream_base)
            resp.append_header(name, value)
        resp.data = upstream.content

    @staticmethod
    def _segments(req: falcon.asgi.Request) -> tuple[str, ...]:
        # NOTE: the raw path, as sent; Falcon's req.path is decoded, which is what let
        # /api/orders/%2e%2e/openapi.json out of its route.
        raw = req.scope.get("raw_path") or req.scope["path"].encode("utf-8")
        try:
            return parse_path(raw)
        except UnsafePath as exc:
            title = "Path too long" if exc.status == 414 else "Unsafe path"
            raise ProblemError(
                exc.status, title, exc.detail, slug="unsafe-path", field="path"
            ) from None

    def client_address(self, req: falcon.asgi.Request) -> str:
        """The address the rate limit charges: the peer, or behind a trusted proxy the last
        address it appended to ``X-Forwarded-For``."""
        if self.settings.trust_forwarded:
            chain = [a.strip() for a in (req.get_header("X-Forwarded-For") or "").split(",")]
            if chain and chain[-1]:
                return chain[-1]
        return req.remote_addr or "unknown"

    async def _admit(self, req: falcon.asgi.Request) -> Client:
        refused: AuthError | None = None
        client: Client | None = None
        try:
            client = self.authenticator.authenticate(
                req.get_header("Authorization"), req.get_header("X-API-Key")
            )
        except AuthError as exc:
            refused = exc
        decision = await self.limiter.check(client.id if client else None, self.client_address(req))
        if not decision.allowed:
            self.metrics.rate_limited.inc()
            retry_after = str(max(1, math.ceil(decision.retry_after_s)))
            raise ProblemError(
                429,
                "Too many requests",
                f"slow down; retry in {retry_after} s"
                + ("" if client else " (requests without valid credentials, per address)"),
                slug="rate-limited",
                headers={"Retry-After": retry_after},
            )
        if client is None:
            assert refused is not None
            raise ProblemError(
                401,
                "Unauthorized",
                str(refused),
                slug="unauthorized",
                field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="flotilla"'},
            )
        return client

    def _route(
        self, req: falcon.asgi.Request, segments: tuple[str, ...], client: Client
    ) -> Destination:
        found = resolve(self.settings.routes, segments, req.method)
        if isinstance(found, NoRoute):
            raise ProblemError(
                404,
                "No such route",
                f"nothing is served at {req.path}",
                slug="no-route",
                field="path",
            )
        if isinstance(found, MethodNotAllowed):
            allow = ", ".join(found.allow)
            raise ProblemError(
                405,
                "Method not allowed",
                f"{req.method} is not allowed here; use {allow}",
                slug="method-not-allowed",
                field="method",
                headers={"Allow": allow},
            )
        if found.rule.scope not in client.scopes:
            raise ProblemError(
                403,
                "Forbidden",
                f"this needs the scope {found.rule.scope}, which your credentials do not carry",
                slug="insufficient-scope",
                field="Authorization",
            )
        return found

    async def _read_body(self, req: falcon.asgi.Request) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = ProblemError(
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
            except UpstreamTimeout as exc:
                # NOTE: a timeout is not retried: the client already waited the whole
                # upstream timeout, and a retry would double it behind its back.
                self._failed(breaker, name, "timeout")
                raise upstream_problem(
                    exc,
                    name,
                    detail=f"{name} did not answer within {self.settings.upstream_timeout_s:g} s",
                ) from exc
            except UpstreamUnavailable as exc:
                self._failed(breaker, name, "unreachable")
                if self._may_retry(breaker, attempt, attempts):
                    await asyncio.sleep(0.05 * attempt)
                    continue
                # NOTE: 503 (as Envoy answers a connect failure): this route is unavailable for
                # now, the others are not, and the client may try again.
                raise upstream_problem(exc, name, detail=f"{name} could not be reached") from exc
            if answer.status in RETRY_STATUSES:
                # NOTE: an upstream that answers "my dependency failed" is itself healthy;
                # counting it would open the circuit on every route to it.
                if _header(answer, DEPENDENCY_FAILURE_HEADER) is None:
                    self._failed(breaker, name, str(answer.status))
                else:
                    self._succeeded(breaker, name)
                wait = retry_after_s(_header(answer, "Retry-After"))
                if (wait is None or wait <= MAX_RETRY_WAIT_S) and self._may_retry(
                    breaker, attempt, attempts
                ):
                    await asyncio.sleep(0.05 * attempt if wait is None else wait)
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
        raise ProblemError(
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


def _header(answer: UpstreamAnswer, name: str) -> str | None:
    lower = name.lower()
    return next((v for n, v in answer.headers if n.lower() == lower), None)
