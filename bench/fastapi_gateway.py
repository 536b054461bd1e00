"""A minimal FastAPI gateway doing the edge's work, measured beside it by ``bench/edge.py``.

    FLOTILLA_EDGE_PORT=8081 FLOTILLA_EDGE_UPSTREAMS='{"orders-api": "http://…"}' \
        uv run python bench/fastapi_gateway.py

Per request, as the Falcon edge: the path parsed from the raw bytes, the caller authenticated
(API key or JWT), the Redis rate limit charged, the route and its scope resolved, the body read
within the size limit, the forwarding headers built, the upstream's circuit breaker consulted,
the request forwarded with the edge's upstream client (``FLOTILLA_EDGE_HTTP_CLIENT``, aiohttp by
default) and the answer's headers filtered. It shares the edge's
framework-free parts (``flotilla.edge``'s authenticator, limiter, route table, header rules),
so what the comparison measures is the framework around them: a catch-all FastAPI route, a
dependency-free handler, FastAPI's own OpenTelemetry instrumentation, uvicorn as the edge
runs it. Not done here and done by the edge: retries and metrics (they cost only on failures
and per scrape), so the comparison favours this gateway, if anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from flotilla.core import (
    PROBLEM_CONTENT_TYPE,
    configure_logging,
    configure_telemetry,
    instrument_httpx,
    instrument_redis,
    serve,
)
from flotilla.edge import (
    AuthError,
    CircuitBreaker,
    EdgeSettings,
    MethodNotAllowed,
    NoRoute,
    UnsafePath,
    downstream_response_headers,
    parse_path,
    resolve,
    upstream_request_headers,
)
from flotilla.edge.app import authenticator_for, limiter_for, upstream_client_for

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class Refused(Exception):
    def __init__(self, status: int, title: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.title, self.headers = status, title, headers or {}


def create_gateway(settings: EdgeSettings) -> FastAPI:
    instrument_httpx()
    instrument_redis()
    authenticator = authenticator_for(settings)
    limiter = limiter_for(settings)
    http = upstream_client_for(settings, settings.http_client)
    breakers = {route.upstream: CircuitBreaker(5, 10.0) for route in settings.routes}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await http.aclose()
        await limiter.close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        body = {"type": "about:blank", "title": exc.title, "status": exc.status}
        return JSONResponse(body, exc.status, headers=exc.headers, media_type=PROBLEM_CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/{path:path}", methods=METHODS)
    async def forward(request: Request, path: str) -> Response:
        try:
            segments = parse_path(request.scope.get("raw_path") or request.url.path.encode())
        except UnsafePath as exc:
            raise Refused(exc.status, "Unsafe path") from None
        client = None
        with suppress(AuthError):
            client = authenticator.authenticate(
                request.headers.get("authorization"), request.headers.get("x-api-key")
            )
        address = request.client.host if request.client else "unknown"
        decision = await limiter.check(client.id if client else None, address)
        if not decision.allowed:
            raise Refused(429, "Too many requests", {"Retry-After": "1"})
        if client is None:
            raise Refused(401, "Unauthorized")
        found = resolve(settings.routes, segments, request.method)
        if isinstance(found, NoRoute):
            raise Refused(404, "No such route")
        if isinstance(found, MethodNotAllowed):
            raise Refused(405, "Method not allowed", {"Allow": ", ".join(found.allow)})
        if found.rule.scope not in client.scopes:
            raise Refused(403, "Forbidden")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise Refused(413, "Request body too large")
        headers = upstream_request_headers(
            request.headers.items(),
            client_ip=address,
            scheme=request.url.scheme,
            host=request.headers.get("host", ""),
            client_id=client.id,
            client_scopes=client.scopes,
            request_id=request.headers.get("x-request-id", "bench"),
            trust_forwarded=settings.trust_forwarded,
        )
        name = found.route.upstream
        if breakers[name].allow() is not None:
            raise Refused(503, "Upstream unavailable", {"Retry-After": "1"})
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = settings.upstreams[name] + found.path + (f"?{query}" if query else "")
        method = "GET" if request.method == "HEAD" else request.method
        answer = await http.request(method, url, headers, body)
        breakers[name].record_success()
        response = Response(content=answer.content, status_code=answer.status)
        for header, value in downstream_response_headers(answer.headers):
            response.headers.append(header, value)
        return response

    # NOTE: as the edge's: no spans for each ASGI send and receive
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz", exclude_spans=["receive", "send"]
    )
    return app


def main() -> None:
    settings = EdgeSettings()
    configure_logging("fastapi-gateway", settings.log_level)
    configure_telemetry("fastapi-gateway")
    app: Any = create_gateway(settings)
    serve(app, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
