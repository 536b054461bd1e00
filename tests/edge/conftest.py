"""A real edge server in front of a real upstream server, both on free loopback ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from flotilla.core import DEPENDENCY_FAILURE_HEADER
from flotilla.edge import EdgeSettings, Route, Rule, create_app, hash_api_key
from tests.support.ports import free_port
from tests.support.servers import serve_in_thread

API_KEY = "test-key-0123456789"
ANY_METHOD = ["GET", "POST", "PUT", "DELETE"]


def open_route(name: str, prefix: str, rewrite: str, *, upstream: str | None = None) -> Route:
    """A route to the echo upstream: the prefix itself and one or two segments below it, any
    method, scope ``test:read``."""
    return Route(
        name=name,
        prefix=prefix,
        upstream=upstream or name,
        rewrite=rewrite,
        rules=[
            Rule(methods=ANY_METHOD, path=path, scope="test:read")
            for path in ("", "/{a}", "/{a}/{b}")
        ],
    )


TEST_ROUTES = [
    open_route("echo", "/api/echo", "/e"),
    open_route("flaky", "/api/flaky", "/flaky"),
    open_route("slow", "/api/slow", "/slow"),
]


@dataclass
class Upstream:
    """An upstream that echoes what it received and can be told to be slow or flaky."""

    hits: dict[str, int] = field(default_factory=dict)
    fail_first: int = 0
    url: str = ""
    #: (raw path, raw query) of every request the echo route received
    received: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "alive"}

        @app.api_route("/slow", methods=["GET"])
        async def slow() -> dict[str, str]:
            await asyncio.sleep(3)
            return {"status": "late"}

        @app.api_route("/flaky", methods=["GET", "POST"])
        async def flaky(request: Request) -> Response:
            key = request.method
            self.hits[key] = self.hits.get(key, 0) + 1
            if self.hits[key] <= self.fail_first:
                return Response(status_code=503)
            return Response(b'{"ok": true}', media_type="application/json")

        @app.post("/e/made")
        async def made() -> Response:
            return Response(
                b"{}",
                status_code=201,
                media_type="application/json",
                headers={"Location": "/e/made/7", "Content-Location": f"{self.url}/e/made/7"},
            )

        @app.get("/flaky/dependency-down")
        async def dependency_down() -> Response:
            self.hits["dependency-down"] = self.hits.get("dependency-down", 0) + 1
            return Response(
                b'{"title": "Inventory unavailable"}',
                status_code=503,
                media_type="application/problem+json",
                headers={DEPENDENCY_FAILURE_HEADER: "inventory-api", "Retry-After": "1"},
            )

        @app.get("/flaky/busy")
        async def busy() -> Response:
            self.hits["busy"] = self.hits.get("busy", 0) + 1
            return Response(status_code=503, headers={"Retry-After": "30"})

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def echo(path: str, request: Request) -> Response:
            body = await request.body()
            self.received.append(
                (
                    request.scope["raw_path"].decode("latin-1"),
                    request.scope["query_string"].decode("latin-1"),
                )
            )
            import json

            echoed = {
                "path": "/" + path,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "raw_query": request.scope["query_string"].decode("latin-1"),
                "query": request.url.query,
                "method": request.method,
                "headers": dict(request.headers),
                "body_bytes": len(body),
            }
            return Response(
                json.dumps(echoed),
                media_type="application/json",
                headers={
                    "Connection": "close, X-Secret-Hop",
                    "X-Secret-Hop": "1",
                    "X-Upstream": "yes",
                },
            )

        return app


@dataclass
class Edge:
    url: str
    upstream: Upstream
    settings: EdgeSettings

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.admin_port}"

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {API_KEY}", **headers}
        )


EdgeFactory = Callable[..., Edge]


@pytest.fixture(autouse=True)
def _tracing(spans: object) -> None:
    """The edge runs with tracing configured, as it does in every deployment."""


@pytest.fixture
def make_edge(redis_url: str) -> Iterator[EdgeFactory]:
    stack: list[object] = []
    base = redis_url.split("?")[0]

    def start(
        *,
        extra_routes: Sequence[Route] = (),
        extra_upstreams: dict[str, str] | None = None,
        **overrides: object,
    ) -> Edge:
        upstream = Upstream()
        up = serve_in_thread(upstream.app())
        upstream_url = up.__enter__()
        upstream.url = upstream_url
        stack.append(up)
        options: dict[str, object] = {
            "routes": [*TEST_ROUTES, *extra_routes],
            "upstreams": {
                "echo": upstream_url,
                "flaky": upstream_url,
                "slow": upstream_url,
                **(extra_upstreams or {}),
            },
            "api_keys": f"tester:{hash_api_key(API_KEY)}:test:read test:write",
            "redis_url": base,
            "rate_limit_prefix": f"test-rl-{uuid.uuid4().hex[:8]}",
            "admin_port": free_port(),
            "trust_trace_context": True,
        }
        settings = EdgeSettings(**(options | overrides))  # type: ignore[arg-type]
        server = serve_in_thread(create_app(settings))
        url = server.__enter__()
        stack.append(server)
        return Edge(url, upstream, settings)

    yield start
    for server in reversed(stack):
        server.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
def edge(make_edge: EdgeFactory) -> Edge:
    return make_edge()


@pytest.fixture
def closed_port() -> int:
    return free_port()
