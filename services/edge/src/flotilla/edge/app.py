"""The edge as a Falcon ASGI app, wrapped in OpenTelemetry's ASGI instrumentation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

import falcon
import falcon.asgi
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flotilla.core import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    configure_logging,
    configure_telemetry,
    current_trace_id,
    instrument_asgi,
    instrument_httpx,
    instrument_redis,
)

from ._auth import Authenticator, parse_api_keys
from ._metrics import EdgeMetrics
from ._proxy import EdgeProblem, Proxy
from ._ratelimit import RedisRateLimiter
from ._settings import EdgeSettings
from ._upstream import Upstream, UpstreamTransportError, make_upstream

logger = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _write_problem(
    resp: falcon.asgi.Response, problem: Problem, headers: dict[str, str] | None = None
) -> None:
    resp.status = problem.status
    resp.content_type = PROBLEM_CONTENT_TYPE
    resp.data = json.dumps(problem.to_dict()).encode()
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


class RequestContext:
    """Request id in and out, trace id out, metrics for every answer."""

    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header("X-Request-Id")
        req.context.request_id = given if given and REQUEST_ID.match(given) else uuid.uuid4().hex
        req.context.started = time.perf_counter()
        req.context.route = "edge"

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        resp.set_header("X-Request-Id", req.context.request_id)
        trace_id = current_trace_id()
        if trace_id:
            resp.set_header("X-Trace-Id", trace_id)
        route = req.context.route
        status = resp.status if isinstance(resp.status, int) else int(str(resp.status)[:3])
        self.metrics.requests.labels(route, req.method, str(status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - req.context.started)


class Health:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "alive"}


class Ready:
    """``/readyz``: the edge is ready while it serves; upstreams and Redis are reported only.

    NOTE: readiness must not cascade. An edge whose orders upstream is down still serves
    every other route (and answers 503 for that one), and with Redis down it rate-limits
    nobody (fails open): taking it out of the Service would turn one outage into all of them.
    """

    def __init__(self, settings: EdgeSettings, http: Upstream, limiter: RedisRateLimiter) -> None:
        self.settings, self.http, self.limiter = settings, http, limiter

    async def _upstream(self, url: str) -> dict[str, Any]:
        try:
            status = await self.http.probe(url.rstrip("/") + "/healthz", 1.0)
        except UpstreamTransportError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": status == 200, "status": status}

    async def _redis(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.limiter.ping(), 1.0)
        except Exception as exc:  # any failure means "not ready", reported by name
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        names = [r.name for r in self.settings.routes]
        with suppress_instrumentation():  # probes are not traced (see flotilla.core run_checks)
            results = await asyncio.gather(
                *(self._upstream(r.upstream) for r in self.settings.routes), self._redis()
            )
        checks = {
            name: {**result, "required": False}
            for name, result in zip([*names, "redis"], results, strict=True)
        }
        resp.status = 200
        resp.media = {"status": "ready", "checks": checks}


class Metrics:
    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.metrics.registry)


class Lifespan:
    def __init__(self, http: Upstream, limiter: RedisRateLimiter) -> None:
        self.http, self.limiter = http, limiter

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        await self.http.aclose()
        await self.limiter.close()


def create_app(settings: EdgeSettings | None = None) -> Any:
    """The edge: a Falcon ASGI app inside OpenTelemetry's ASGI middleware."""
    settings = settings or EdgeSettings()
    instrument_httpx()  # with FLOTILLA_EDGE_HTTP_CLIENT=httpx, upstream calls make CLIENT spans
    instrument_redis()  # the rate limit's EVALSHA shows in the trace
    metrics = EdgeMetrics()
    http = make_upstream(
        settings.http_client,
        timeout_s=settings.upstream_timeout_s,
        connect_timeout_s=settings.upstream_connect_timeout_s,
    )
    limiter = RedisRateLimiter(
        settings.redis_url,
        rate=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        prefix=settings.rate_limit_prefix,
    )
    authenticator = Authenticator(
        api_keys=parse_api_keys(settings.api_keys),
        jwt_key=settings.jwt_secret.get_secret_value(),
        jwt_algorithms=tuple(settings.jwt_algorithms),
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
    )
    middleware: list[Any] = [RequestContext(metrics), Lifespan(http, limiter)]
    app = falcon.asgi.App(middleware=middleware)

    async def on_problem(req: Any, resp: Any, ex: EdgeProblem, params: Any) -> None:
        _write_problem(resp, ex.problem.model_copy(update={"instance": req.path}), ex.headers)

    async def on_crash(req: Any, resp: Any, ex: Exception, params: Any) -> None:
        if isinstance(ex, falcon.HTTPError):
            _write_problem(
                resp,
                Problem(
                    title=ex.title or "Error",
                    status=ex.status_code,
                    detail=ex.description,
                    instance=req.path,
                ),
                dict(ex.headers or {}),
            )
            return
        logger.exception("unhandled error in the edge", extra={"path": req.path})
        _write_problem(
            resp,
            Problem(
                title="Internal error",
                status=500,
                instance=req.path,
                detail="the edge failed to handle the request",
            ),
        )

    app.add_error_handler(Exception, on_crash)
    app.add_error_handler(EdgeProblem, on_problem)
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Ready(settings, http, limiter))
    app.add_route("/metrics", Metrics(metrics))
    app.add_sink(
        Proxy(settings, authenticator=authenticator, limiter=limiter, http=http, metrics=metrics),
        prefix="/",
    )
    # NOTE: opentelemetry-instrumentation-falcon only instruments falcon.App (WSGI); for a
    # falcon.asgi.App the generic ASGI middleware is what works. It makes the SERVER span the
    # proxy's CLIENT span hangs under, so the trace starts here and X-Trace-Id can name it.
    return instrument_asgi(app)


def app_from_environment() -> Any:
    """Factory for ASGI servers: settings, logging and tracing from the environment.

    Granian runs the app in a worker process of its own, so everything process-wide is set up
    here rather than in the launcher.
    """
    settings = EdgeSettings()
    configure_logging("edge", settings.log_level)
    configure_telemetry("edge")
    return create_app(settings)
