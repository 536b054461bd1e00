"""A real edge in front of a real upstream, over HTTP on loopback."""

from __future__ import annotations

import time

import httpx
import jwt
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.edge import Route
from tests.edge.conftest import Edge, EdgeFactory


def is_problem(answer: httpx.Response, status: int) -> bool:
    return (
        answer.status_code == status
        and answer.headers["content-type"] == "application/problem+json"
        and "Traceback" not in answer.text
    )


def test_a_request_reaches_its_upstream_with_forwarding_headers(edge: Edge) -> None:
    with edge.client(**{"X-Request-Id": "req-123", "Connection": "X-Drop", "X-Drop": "1"}) as c:
        answer = c.get("/api/echo/items?page=2")
    assert answer.status_code == 200
    echoed = answer.json()
    assert echoed["path"] == "/e/items"
    assert echoed["query"] == "page=2"
    received = echoed["headers"]
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-forwarded-proto"] == "http"
    assert received["x-client-id"] == "key:tester"
    assert received["x-request-id"] == "req-123"
    assert "authorization" not in received
    assert "x-drop" not in received
    assert answer.headers["x-request-id"] == "req-123"
    assert len(answer.headers["x-trace-id"]) == 32
    assert answer.headers["x-upstream"] == "yes"
    assert "x-secret-hop" not in answer.headers  # named in the upstream's Connection header


def test_request_id_is_made_when_missing(edge: Edge) -> None:
    with edge.client() as c:
        answer = c.get("/api/echo/x")
    assert len(answer.headers["x-request-id"]) == 32


def test_no_credentials_is_a_401_problem_with_a_trace_id(edge: Edge) -> None:
    answer = httpx.get(f"{edge.url}/api/echo/x")
    assert is_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["errors"][0]["field"] == "Authorization"
    assert len(answer.headers["x-trace-id"]) == 32


def test_a_valid_jwt_is_let_through_and_a_wrong_audience_is_not(edge: Edge) -> None:
    claims = {"sub": "ada", "iss": edge.settings.jwt_issuer, "exp": int(time.time()) + 60}
    secret = edge.settings.jwt_secret.get_secret_value()
    good = jwt.encode({**claims, "aud": edge.settings.jwt_audience}, secret, algorithm="HS256")
    bad = jwt.encode({**claims, "aud": "someone-else"}, secret, algorithm="HS256")
    ok = httpx.get(f"{edge.url}/api/echo/x", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200
    assert ok.json()["headers"]["x-client-id"] == "jwt:ada"
    refused = httpx.get(f"{edge.url}/api/echo/x", headers={"Authorization": f"Bearer {bad}"})
    assert is_problem(refused, 401)


def test_rate_limit_answers_429_with_retry_after(make_edge: EdgeFactory) -> None:
    edge = make_edge(rate_limit_per_second=1, rate_limit_burst=3)
    with edge.client() as c:
        codes = [c.get("/api/echo/x") for _ in range(6)]
    assert [a.status_code for a in codes[:3]] == [200, 200, 200]
    limited = codes[-1]
    assert is_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_rate_limit_is_shared_by_edge_replicas(make_edge: EdgeFactory) -> None:
    """Two edges on one Redis and one key prefix share the client's budget."""
    first = make_edge(rate_limit_per_second=1, rate_limit_burst=2)
    second = make_edge(
        rate_limit_per_second=1,
        rate_limit_burst=2,
        rate_limit_prefix=first.settings.rate_limit_prefix,
    )
    with first.client() as a, second.client() as b:
        answers = [
            a.get("/api/echo/x"),
            b.get("/api/echo/x"),
            a.get("/api/echo/x"),
            b.get("/api/echo/x"),
        ]
    assert sum(x.status_code == 429 for x in answers) >= 2


def test_a_body_over_the_limit_is_413(make_edge: EdgeFactory) -> None:
    edge = make_edge(max_body_bytes=1000)
    with edge.client() as c:
        assert c.post("/api/echo/x", content=b"x" * 999).json()["body_bytes"] == 999
        assert is_problem(c.post("/api/echo/x", content=b"x" * 1001), 413)

        def chunks():  # no Content-Length: the edge counts what arrives
            for _ in range(20):
                yield b"y" * 100

        assert is_problem(c.post("/api/echo/x", content=chunks()), 413)


def test_a_slow_upstream_is_a_504(make_edge: EdgeFactory) -> None:
    edge = make_edge(upstream_timeout_s=0.3)
    with edge.client() as c:
        assert is_problem(c.get("/api/slow"), 504)


def test_an_unreachable_upstream_is_a_502_then_the_circuit_opens(
    make_edge: EdgeFactory, closed_port: int
) -> None:
    edge = make_edge(breaker_failures=3, breaker_cooldown_s=30, retries=0)
    edge.settings.routes.append(
        Route(name="down", prefix="/api/down", upstream=f"http://127.0.0.1:{closed_port}")
    )
    # NOTE: routes are read at app creation; start a second edge with the extra route.
    edge = make_edge(
        breaker_failures=3, breaker_cooldown_s=30, retries=0, routes=[*edge.settings.routes]
    )
    with edge.client() as c:
        first = [c.get("/api/down/x") for _ in range(3)]
        opened = c.get("/api/down/x")
    assert all(is_problem(a, 502) for a in first)
    assert is_problem(opened, 503)
    assert int(opened.headers["retry-after"]) >= 1


def test_idempotent_requests_are_retried_and_posts_are_not(make_edge: EdgeFactory) -> None:
    edge = make_edge(retries=2)
    edge.upstream.fail_first = 1
    with edge.client() as c:
        assert c.get("/api/flaky").status_code == 200
        assert c.post("/api/flaky").status_code == 503
    assert edge.upstream.hits == {"GET": 2, "POST": 1}


def test_unknown_route_is_a_404_problem(edge: Edge) -> None:
    with edge.client() as c:
        assert is_problem(c.get("/nowhere"), 404)


def test_health_readiness_and_metrics(edge: Edge, make_edge: EdgeFactory, closed_port: int) -> None:
    assert httpx.get(f"{edge.url}/healthz").json() == {"status": "alive"}
    ready = httpx.get(f"{edge.url}/readyz")
    assert ready.status_code == 200
    with edge.client() as c:
        c.get("/api/echo/x")
    metrics = httpx.get(f"{edge.url}/metrics").text
    assert 'edge_requests_total{method="GET",route="echo",status="200"}' in metrics
    broken = make_edge(
        routes=[Route(name="gone", prefix="/api/gone", upstream=f"http://127.0.0.1:{closed_port}")]
    )
    unready = httpx.get(f"{broken.url}/readyz")
    assert unready.status_code == 503
    assert unready.json()["checks"]["gone"]["ok"] is False


def test_the_trace_starts_at_the_edge_and_continues_upstream(
    edge: Edge, spans: InMemorySpanExporter
) -> None:
    with edge.client() as c:
        answer = c.get("/api/echo/x")
    trace_id = answer.headers["x-trace-id"]
    traceparent = answer.json()["headers"]["traceparent"]
    assert traceparent.split("-")[1] == trace_id
    finished = [
        s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id
    ]
    edge_server = next(s for s in finished if s.name == "GET /api/echo/x")
    assert edge_server.kind.name == "SERVER"
    (edge_client,) = [
        s
        for s in finished
        if s.kind.name == "CLIENT"
        and s.name == "GET"
        and s.parent is not None
        and s.parent.span_id == edge_server.context.span_id
    ]
    assert traceparent.split("-")[2] == format(edge_client.context.span_id, "016x")
    assert not [s for s in finished if "http send" in s.name or "http receive" in s.name]
