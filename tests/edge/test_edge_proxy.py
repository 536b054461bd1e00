"""A real edge in front of a real upstream, over HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import falcon.asgi
import httpx
import jwt
import pytest
import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.edge import EdgeSettings, create_app
from tests.edge.conftest import API_KEY, Edge, EdgeFactory, open_route
from tests.support.servers import silent_server

pytestmark = pytest.mark.integration


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
    assert received["x-forwarded-host"] == edge.url.removeprefix("http://")
    assert received["x-client-id"] == "key:tester"
    assert received["x-request-id"] == "req-123"
    assert "authorization" not in received
    assert "x-drop" not in received
    assert answer.headers["x-request-id"] == "req-123"
    assert len(answer.headers["x-trace-id"]) == 32
    assert answer.headers["x-upstream"] == "yes"
    assert "x-secret-hop" not in answer.headers  # named in the upstream's Connection header


def test_request_id_is_made_when_missing_or_not_sane(edge: Edge) -> None:
    with edge.client() as c:
        made = c.get("/api/echo/x")
        replaced = c.get("/api/echo/x", headers={"X-Request-Id": "x" * 300})
    assert len(made.headers["x-request-id"]) == 32
    assert made.json()["headers"]["x-request-id"] == made.headers["x-request-id"]
    assert len(replaced.headers["x-request-id"]) == 32


def test_no_credentials_is_a_401_problem_with_a_trace_id(edge: Edge) -> None:
    answer = httpx.get(f"{edge.url}/api/echo/x")
    assert is_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["errors"][0]["field"] == "Authorization"
    assert len(answer.headers["x-trace-id"]) == 32


def jwt_for(edge: Edge, **claims: object) -> str:
    base = {
        "sub": "ada",
        "iss": edge.settings.jwt_issuer,
        "aud": edge.settings.jwt_audience,
        "exp": int(time.time()) + 600,
        "scope": "test:read",
    }
    secret = edge.settings.jwt_secret.get_secret_value()
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


def test_a_valid_jwt_or_api_key_is_let_through(edge: Edge) -> None:
    by_jwt = httpx.get(
        f"{edge.url}/api/echo/x", headers={"Authorization": f"Bearer {jwt_for(edge)}"}
    )
    by_header = httpx.get(f"{edge.url}/api/echo/x", headers={"X-API-Key": API_KEY})
    assert by_jwt.status_code == 200
    assert by_jwt.json()["headers"]["x-client-id"] == "jwt:ada"
    assert by_header.status_code == 200
    assert by_header.json()["headers"]["x-client-id"] == "key:tester"
    assert "x-api-key" not in by_header.json()["headers"]


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "someone-else"}, "issuer"),
        ({"exp": int(time.time()) - 60}, "expired"),
    ],
)
def test_a_jwt_with_the_wrong_audience_issuer_or_expiry_is_a_401_problem(
    edge: Edge, claims: dict[str, object], detail: str
) -> None:
    token = jwt_for(edge, **claims)
    refused = httpx.get(f"{edge.url}/api/echo/x", headers={"Authorization": f"Bearer {token}"})
    assert is_problem(refused, 401)
    assert detail in refused.json()["detail"]
    assert len(refused.headers["x-trace-id"]) == 32


def test_a_jwt_signed_with_another_secret_or_an_unknown_key_is_a_401_problem(edge: Edge) -> None:
    forged = jwt.encode(
        {
            "sub": "eve",
            "iss": edge.settings.jwt_issuer,
            "aud": edge.settings.jwt_audience,
            "exp": int(time.time()) + 600,
        },
        "not-the-edge-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    for headers in ({"Authorization": f"Bearer {forged}"}, {"X-API-Key": "guess"}):
        assert is_problem(httpx.get(f"{edge.url}/api/echo/x", headers=headers), 401)


def test_rate_limit_answers_429_with_retry_after(make_edge: EdgeFactory) -> None:
    edge = make_edge(rate_limit_per_second=1, rate_limit_burst=3)
    with edge.client() as c:
        codes = [c.get("/api/echo/x") for _ in range(6)]
    assert [a.status_code for a in codes[:3]] == [200, 200, 200]
    limited = codes[-1]
    assert is_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_the_first_request_after_a_start_has_no_red_span(
    make_edge: EdgeFactory, redis_url: str, spans: InMemorySpanExporter
) -> None:
    """A fresh edge on a Redis without its rate-limit script (a new or restarted Redis): the
    first request's EVALSHA answers NOSCRIPT and redis-py loads the script, and nothing in the
    trace is red (``flotilla.core._folding``). Before, ``make e2e``'s first test, run alone,
    found a red EVALSHA span in the first order's trace."""
    store = redis.Redis.from_url(redis_url.split("?")[0])
    store.script_flush()  # NOTE: as a restarted Redis has it (redis-py reloads its own)
    edge = make_edge()
    spans.clear()
    with edge.client() as c:
        assert c.get("/api/echo/x").status_code == 200
    red = [s.name for s in spans.get_finished_spans() if s.status.status_code.name == "ERROR"]
    assert red == []


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

        def chunks() -> Iterator[bytes]:  # no Content-Length: the edge counts what arrives
            for _ in range(20):
                yield b"y" * 100

        assert is_problem(c.post("/api/echo/x", content=chunks()), 413)


def test_a_slow_upstream_is_a_504(make_edge: EdgeFactory) -> None:
    edge = make_edge(upstream_timeout_s=0.3)
    with edge.client() as c:
        assert is_problem(c.get("/api/slow"), 504)


def test_an_unreachable_upstream_is_a_503_for_its_route_only_then_the_circuit_opens(
    make_edge: EdgeFactory, closed_port: int
) -> None:
    edge = make_edge(
        breaker_failures=3,
        breaker_cooldown_s=30,
        retries=0,
        extra_routes=[open_route("down", "/api/down", "")],
        extra_upstreams={"down": f"http://127.0.0.1:{closed_port}"},
    )
    with edge.client() as c:
        first = [c.get("/api/down/x") for _ in range(3)]
        opened = c.get("/api/down/x")
        others = c.get("/api/echo/x")
        metrics = httpx.get(f"{edge.admin_url}/metrics").text
    assert all(is_problem(a, 503) for a in first)
    assert {a.json()["type"].rsplit("/", 1)[1] for a in first} == {"upstream-unreachable"}
    assert all(a.headers["retry-after"] == "1" for a in first)
    assert is_problem(opened, 503)
    assert opened.json()["type"].endswith("/circuit-open")
    assert 1 <= int(opened.headers["retry-after"]) <= 30
    assert others.status_code == 200  # one upstream's circuit does not affect the others
    assert 'edge_circuit_state{upstream="down"} 2.0' in metrics
    assert 'edge_circuit_state{upstream="echo"} 0.0' in metrics
    assert 'edge_upstream_errors_total{kind="unreachable",upstream="down"} 3.0' in metrics


def test_the_circuit_opens_on_upstream_503s_and_stops_retrying_once_open(
    make_edge: EdgeFactory,
) -> None:
    edge = make_edge(breaker_failures=2, breaker_cooldown_s=30, retries=5)
    edge.upstream.fail_first = 100
    with edge.client() as c:
        first = c.get("/api/flaky")
        second = c.get("/api/flaky")
    assert first.status_code == 503  # the upstream's own answer, passed through
    assert is_problem(second, 503)
    assert second.headers["retry-after"]
    assert edge.upstream.hits == {"GET": 2}


def test_idempotent_requests_are_retried_and_posts_are_not(make_edge: EdgeFactory) -> None:
    edge = make_edge(retries=2)
    edge.upstream.fail_first = 1
    with edge.client() as c:
        assert c.get("/api/flaky").status_code == 200
        assert c.post("/api/flaky").status_code == 503
    assert edge.upstream.hits == {"GET": 2, "POST": 1}


def test_unknown_route_is_a_404_problem(edge: Edge) -> None:
    with edge.client() as c:
        answer = c.get("/nowhere")
    assert is_problem(answer, 404)
    assert answer.json()["errors"][0]["field"] == "path"
    assert answer.json()["instance"] == "/nowhere"


def test_health_and_bare_readiness_are_public_and_the_details_are_on_the_admin_port(
    edge: Edge,
) -> None:
    """The public port answers /healthz and a bare /readyz (no internal detail) without
    credentials, and has no /metrics; the admin port has the detailed /readyz and /metrics."""
    assert httpx.get(f"{edge.url}/healthz").json() == {"status": "alive"}
    public = httpx.get(f"{edge.url}/readyz")
    assert public.status_code == 200 and public.json() == {"status": "ready"}
    assert is_problem(httpx.get(f"{edge.url}/metrics"), 401)
    with edge.client() as c:
        assert is_problem(c.get("/metrics"), 404)
    ready = httpx.get(f"{edge.admin_url}/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"echo", "flaky", "slow", "redis"}
    with edge.client() as c:
        c.get("/api/echo/x")
    metrics = httpx.get(f"{edge.admin_url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'edge_requests_total{method="GET",route="echo",status="200"} 1.0' in metrics.text
    assert 'edge_request_duration_seconds_count{route="echo"} 1.0' in metrics.text


def test_metrics_count_refused_requests(make_edge: EdgeFactory) -> None:
    edge = make_edge(rate_limit_per_second=1, rate_limit_burst=1)
    with edge.client() as c:
        answers = [c.get("/api/echo/x").status_code for _ in range(3)]
    anonymous = httpx.get(f"{edge.url}/api/echo/x")
    metrics = httpx.get(f"{edge.admin_url}/metrics").text
    limited = answers.count(429)
    assert limited >= 1 and anonymous.status_code == 401
    assert f"edge_rate_limited_total {float(limited)}" in metrics
    # NOTE: the limit decides before routing, so refusals are the edge's own answers
    assert f'edge_requests_total{{method="GET",route="edge",status="429"}} {float(limited)}' in (
        metrics
    )
    assert 'edge_requests_total{method="GET",route="edge",status="401"} 1.0' in metrics


def test_an_upstream_that_is_down_leaves_the_edge_ready_and_is_reported(
    make_edge: EdgeFactory, closed_port: int
) -> None:
    """Readiness does not cascade: the edge still serves every healthy route, so it stays in
    the Service; /readyz names the upstream that is down, as information."""
    broken = make_edge(
        extra_routes=[open_route("gone", "/api/gone", "")],
        extra_upstreams={"gone": f"http://127.0.0.1:{closed_port}"},
    )
    ready = httpx.get(f"{broken.admin_url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["gone"] == {"ok": False, "error": checks["gone"]["error"], "required": False}
    assert checks["echo"]["ok"] is True and checks["redis"]["ok"] is True
    with broken.client() as c:
        assert c.get("/api/echo/x").status_code == 200
        assert is_problem(c.get("/api/gone/x"), 503)


def test_the_edge_stays_ready_and_serves_while_redis_is_unreachable(
    make_edge: EdgeFactory, closed_port: int
) -> None:
    """The shared rate limit fails open: a Redis outage must not become a platform outage."""
    edge = make_edge(redis_url=f"redis://127.0.0.1:{closed_port}/0")
    ready = httpx.get(f"{edge.admin_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"]["ok"] is False
    with edge.client() as c:
        assert [c.get("/api/echo/x").status_code for _ in range(5)] == [200] * 5


def test_an_unexpected_failure_is_a_500_problem_without_a_traceback(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    """Served in-process (ASGI transport) with one extra route that fails on purpose."""
    asgi = create_app(EdgeSettings(admin_port=None, redis_url=redis_url.split("?")[0]))
    falcon_app = asgi
    while not isinstance(falcon_app, falcon.asgi.App):
        falcon_app = falcon_app.app

    class Broken:
        async def on_get(self, req: object, resp: object) -> None:
            raise RuntimeError("secret internals")

    falcon_app.add_route("/broken", Broken())

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return await client.get("/broken")

    answer = asyncio.run(call())
    assert is_problem(answer, 500)
    assert "secret internals" not in answer.text
    assert len(answer.headers["x-trace-id"]) == 32


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
    edge_server = next(s for s in finished if s.name == "GET /api/echo/{a}")
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


def test_server_spans_are_named_by_route_template_never_by_raw_path(
    edge: Edge, spans: InMemorySpanExporter
) -> None:
    """Two ids under one route make one span name (and ``http.route``); a path no route
    covers is named by its method alone, so no client can mint span names."""
    with edge.client() as c:
        ids = [c.get(path).headers["x-trace-id"] for path in ("/api/echo/x", "/api/echo/y")]
        unrouted = c.get("/made-up/1234").headers["x-trace-id"]
    servers = {
        format(s.context.trace_id, "032x"): s
        for s in spans.get_finished_spans()
        if s.kind.name == "SERVER"
    }
    for trace_id in ids:
        assert servers[trace_id].name == "GET /api/echo/{a}"
        assert (servers[trace_id].attributes or {})["http.route"] == "/api/echo/{a}"
    assert servers[unrouted].name == "GET"
    assert "http.route" not in (servers[unrouted].attributes or {})


def test_a_hanging_redis_costs_one_request_its_timeout_not_every_request(
    make_edge: EdgeFactory,
) -> None:
    """Redis that accepts and never answers: the first request waits out the limiter's
    timeout and passes (fail open); the requests right after it do not ask Redis again."""
    with silent_server() as hung:
        edge = make_edge(redis_url=f"redis://127.0.0.1:{hung.port}/0")
        with edge.client() as c:
            answers = [c.get("/api/echo/x").status_code for _ in range(5)]
        asked = len(hung.received)
    assert answers == [200] * 5
    assert asked == 1, f"Redis was asked {asked} times"
