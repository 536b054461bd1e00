"""A real edge server in front of a real upstream server, both on free loopback ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from flotilla.edge import EdgeSettings, Route, create_app, hash_api_key
from tests.support.ports import free_port
from tests.support.servers import serve_in_thread

API_KEY = "test-key-0123456789"


@dataclass
class Upstream:
    """An upstream that echoes what it received and can be told to be slow or flaky."""

    hits: dict[str, int] = field(default_factory=dict)
    fail_first: int = 0

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

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def echo(path: str, request: Request) -> Response:
            body = await request.body()
            import json

            echoed = {
                "path": "/" + path,
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

    def start(*, extra_routes: Sequence[Route] = (), **overrides: object) -> Edge:
        upstream = Upstream()
        up = serve_in_thread(upstream.app())
        upstream_url = up.__enter__()
        stack.append(up)
        options: dict[str, object] = {
            "routes": [
                Route(name="echo", prefix="/api/echo", upstream=upstream_url, rewrite="/e"),
                Route(name="flaky", prefix="/api/flaky", upstream=upstream_url, rewrite="/flaky"),
                Route(name="slow", prefix="/api/slow", upstream=upstream_url, rewrite="/slow"),
                *extra_routes,
            ],
            "api_keys": f"tester:{hash_api_key(API_KEY)}",
            "redis_url": base,
            "rate_limit_prefix": f"test-rl-{uuid.uuid4().hex[:8]}",
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
