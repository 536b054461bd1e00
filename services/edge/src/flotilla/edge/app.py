"""The edge as a Falcon ASGI app, wrapped in OpenTelemetry's ASGI instrumentation.

Two listeners: the public one (the proxy, ``/healthz`` and a bare ``/readyz``) and an admin
one (``FLOTILLA_EDGE_ADMIN_PORT``: ``/metrics`` and the detailed ``/readyz``) that the chart
exposes to Prometheus and the kubelet, never through the public Service or Ingress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
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
    ProblemError,
    UpstreamUnavailable,
    configure_logging,
    configure_telemetry,
    current_trace_id,
    instrument_asgi,
    instrument_httpx,
    instrument_redis,
    scrape,
)

from ._auth import Authenticator, parse_api_keys
from ._metrics import EdgeMetrics
from ._proxy import Proxy
from ._ratelimit import RedisRateLimiter
from ._settings import EdgeSettings
from ._trace_boundary import TraceBoundary, link_caller
from ._upstream import Upstream, make_upstream

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


class PublicReady:
    """``/readyz`` on the public port: the edge serves; what it knows about its upstreams and
    Redis is for the admin port (the public answer carries no internal detail)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ready"}


class Ready:
    """``/readyz`` on the admin port: the edge is ready while it serves; upstreams and Redis
    are reported only.

    NOTE: readiness must not cascade. An edge whose orders upstream is down still serves
    every other route (and answers 503 for that one), and with Redis down it rate-limits
    nobody (fails open): taking it out of the Service would turn one outage into all of them.
    """

    def __init__(self, settings: EdgeSettings, http: Upstream, limiter: RedisRateLimiter) -> None:
        self.settings, self.http, self.limiter = settings, http, limiter

    async def _upstream(self, url: str) -> dict[str, Any]:
        try:
            status = await self.http.probe(url.rstrip("/") + "/healthz", 1.0)
        except UpstreamUnavailable as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": status == 200, "status": status}

    async def _redis(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.limiter.ping(), 1.0)
        except Exception as exc:  # any failure means "not ready", reported by name
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        upstreams = self.settings.upstreams
        with suppress_instrumentation():  # probes are not traced (see flotilla.core run_checks)
            results = await asyncio.gather(
                *(self._upstream(url) for url in upstreams.values()), self._redis()
            )
        checks = {
            name: {**result, "required": False}
            for name, result in zip([*upstreams, "redis"], results, strict=True)
        }
        resp.status = 200
        resp.media = {"status": "ready", "checks": checks}


class Metrics:
    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        # NOTE: the edge's own counters, then the OpenTelemetry ones of the process (the ASGI
        # and aiohttp instrumentations' http.server/http.client durations)
        resp.data = generate_latest(self.metrics.registry) + scrape()


class AdminListener:
    """The admin port, served by a uvicorn of its own on a thread of its own.

    NOTE: a thread (not a second socket of the public server) so that it works the same
    under granian, which runs the app in a worker process and binds one address; the admin
    app has its own clients because an event loop's clients cannot be shared with another.
    """

    def __init__(self, settings: EdgeSettings, metrics: EdgeMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        assert self.settings.admin_port is not None
        config = uvicorn.Config(
            create_admin_app(self.settings, self.metrics),
            host=self.settings.admin_host,
            port=self.settings.admin_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="edge-admin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the edge's admin listener did not start within 10 s")
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError(
                f"the edge's admin listener could not bind {self.settings.admin_host}:"
                f"{self.settings.admin_port}; free the port or set FLOTILLA_EDGE_ADMIN_PORT"
            )

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)


class Lifespan:
    def __init__(
        self, http: Upstream, limiter: RedisRateLimiter, admin: AdminListener | None
    ) -> None:
        self.http, self.limiter, self.admin = http, limiter, admin

    async def process_startup(self, scope: Any, event: Any) -> None:
        if self.admin is not None:
            await asyncio.to_thread(self.admin.start)

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        if self.admin is not None:
            await asyncio.to_thread(self.admin.stop)
        await self.http.aclose()
        await self.limiter.close()


def authenticator_for(settings: EdgeSettings) -> Authenticator:
    """The edge's authenticator: its API keys and JWT rules from ``settings``."""
    return Authenticator(
        api_keys=parse_api_keys(settings.api_keys),
        jwt_key=settings.jwt_secret.get_secret_value(),
        jwt_algorithms=tuple(settings.jwt_algorithms),
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
        jwt_leeway_s=settings.jwt_leeway_s,
    )


def limiter_for(settings: EdgeSettings) -> RedisRateLimiter:
    """The edge's rate limiter, with the rates of ``settings``."""
    return RedisRateLimiter(
        settings.redis_url,
        rate=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        prefix=settings.rate_limit_prefix,
        anonymous_rate=settings.anonymous_rate_limit_per_second,
        anonymous_burst=settings.anonymous_rate_limit_burst,
    )


def upstream_client_for(settings: EdgeSettings, kind: str) -> Upstream:
    """The edge's upstream HTTP client of ``kind`` (httpx or aiohttp), with its timeouts."""
    return make_upstream(
        kind,
        timeout_s=settings.upstream_timeout_s,
        connect_timeout_s=settings.upstream_connect_timeout_s,
    )


def create_admin_app(settings: EdgeSettings, metrics: EdgeMetrics) -> Any:
    """The admin port's app: ``/metrics``, the detailed ``/readyz`` and ``/healthz``."""
    # NOTE: httpx for the probes: aiohttp's instrumentation would trace them
    http, limiter = upstream_client_for(settings, "httpx"), limiter_for(settings)
    app = falcon.asgi.App(middleware=[Lifespan(http, limiter, None)])
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Ready(settings, http, limiter))
    app.add_route("/metrics", Metrics(metrics))
    return app


def create_app(settings: EdgeSettings | None = None) -> Any:
    """The edge: a Falcon ASGI app inside OpenTelemetry's ASGI middleware."""
    settings = settings or EdgeSettings()
    instrument_httpx()  # with FLOTILLA_EDGE_HTTP_CLIENT=httpx, upstream calls make CLIENT spans
    instrument_redis()  # the rate limit's EVALSHA shows in the trace
    metrics = EdgeMetrics()
    http = upstream_client_for(settings, settings.http_client)
    limiter = limiter_for(settings)
    authenticator = authenticator_for(settings)
    admin = AdminListener(settings, metrics) if settings.admin_port is not None else None
    middleware: list[Any] = [RequestContext(metrics), Lifespan(http, limiter, admin)]
    app = falcon.asgi.App(middleware=middleware)

    async def on_problem(req: Any, resp: Any, ex: ProblemError, params: Any) -> None:
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
    app.add_error_handler(ProblemError, on_problem)
    app.add_route("/healthz", Health())
    app.add_route("/readyz", PublicReady())
    app.add_sink(
        Proxy(settings, authenticator=authenticator, limiter=limiter, http=http, metrics=metrics),
        prefix="/",
    )
    # NOTE: opentelemetry-instrumentation-falcon only instruments falcon.App (WSGI); for a
    # falcon.asgi.App the generic ASGI middleware is what works. It makes the SERVER span the
    # proxy's CLIENT span hangs under, so the trace starts here and X-Trace-Id can name it.
    # The boundary outside it decides whether a caller's trace context is believed.
    return TraceBoundary(
        instrument_asgi(app, server_request_hook=link_caller),
        trust=settings.trust_trace_context,
    )


def app_from_environment() -> Any:
    """Factory for ASGI servers: settings, logging and tracing from the environment.

    Granian runs the app in a worker process of its own, so everything process-wide is set up
    here rather than in the launcher.
    """
    settings = EdgeSettings()
    configure_logging("edge", settings.log_level)
    configure_telemetry("edge")
    return create_app(settings)
