"""The same edge behaviour with either upstream client, and under either ASGI server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.edge.conftest import API_KEY, EdgeFactory
from tests.support.ports import free_port
from tests.support.raw_http import raw_request

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
def test_forwarding_timeouts_and_unreachable_upstreams_with_each_client(
    make_edge: EdgeFactory, client: str, closed_port: int
) -> None:
    edge = make_edge(http_client=client, upstream_timeout_s=0.5, retries=1)
    with edge.client() as c:
        echoed = c.get("/api/echo/x?q=1")
        posted = c.post("/api/echo/y", content=b"abc")
        slow = c.get("/api/slow")
    assert echoed.status_code == 200
    assert echoed.json()["query"] == "q=1"
    assert echoed.json()["headers"]["traceparent"].split("-")[1] == echoed.headers["x-trace-id"]
    assert posted.json()["body_bytes"] == 3
    assert slow.status_code == 504
    edge.upstream.fail_first = 1
    with edge.client() as c:
        assert c.get("/api/flaky").status_code == 200  # retried once
    assert edge.upstream.hits["GET"] == 2


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_the_edge_process_serves_under_each_asgi_server(server: str, redis_url: str) -> None:
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "FLOTILLA_EDGE_SERVER": server,
        "FLOTILLA_EDGE_PORT": str(port),
        "FLOTILLA_EDGE_ADMIN_PORT": str(admin_port),
        "FLOTILLA_EDGE_REDIS_URL": redis_url.split("?")[0],
        "OTEL_TRACES_EXPORTER": "none",
        "FLOTILLA_EDGE_ROUTES": "[]",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flotilla.edge", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                alive = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        refused = httpx.get(f"http://127.0.0.1:{port}/api/orders")
        unknown = httpx.get(
            f"http://127.0.0.1:{port}/api/orders", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        # the server hands the raw path over, so the edge can refuse what decoding would hide
        escaped = raw_request(f"http://127.0.0.1:{port}", b"/api/orders/%2e%2e/docs")
        metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics")
    finally:
        process.terminate()
        process.wait(15)
    assert alive.json() == {"status": "alive"}
    assert refused.status_code == 401
    assert len(refused.headers["x-trace-id"]) == 32
    assert unknown.status_code == 401  # this process knows no API keys
    assert escaped.status == 400
    assert metrics.status_code == 200 and "edge_requests_total" in metrics.text
    assert process.returncode in (0, -15)
