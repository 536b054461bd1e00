"""The edge as a trust boundary, tried by a hostile client against a real edge and upstream:
hostile paths, methods and scopes, credential guessing, trace context from outside, and the
proxy's fidelity (Location, HEAD, Retry-After, what opens a circuit)."""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import DEPENDENCY_FAILURE_HEADER
from flotilla.edge import hash_api_key
from tests.edge.conftest import API_KEY, Edge, EdgeFactory
from tests.support.raw_http import raw_request

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_KEY}"}

#: (raw request target, status): every one is refused before routing, and nothing of it
#: reaches the upstream.
HOSTILE_TARGETS = [
    (b"/api/echo/../docs", 400),
    (b"/api/echo/../../readyz", 400),
    (b"/api/echo/./x", 400),
    (b"/api/echo/%2e%2e/openapi.json", 400),
    (b"/api/echo/%2E%2e/openapi.json", 400),
    (b"/api/echo/.%2e/x", 400),
    (b"/api/echo/%2e/x", 400),
    (b"/api/echo/..%2freadyz", 400),
    (b"/api/echo/x%2F..%2F..%2Fadmin", 400),
    (b"/api/echo/x%3Fadmin=true", 400),
    (b"/api/echo/x%23fragment", 400),
    (b"/api/echo/..%5cdocs", 400),
    (b"/api/echo/x\\..\\docs", 400),
    (b"/api/echo/x%00.json", 400),
    (b"/api/echo/x%0d%0aX-Client-Id:%20key:admin", 400),
    (b"/api/echo/%zz", 400),
    (b"/api/echo/x%", 400),
    (b"/api/echo/%c0%ae%c0%ae", 400),  # overlong UTF-8 for "..": not UTF-8 at all
    (b"/api/echo//x", 400),
    (b"/api/echo/x/", 400),
    (b"/api/echo/" + b"a" * 5000, 414),
]


@pytest.mark.parametrize(("target", "status"), HOSTILE_TARGETS)
def test_hostile_paths_are_a_problem_and_never_reach_the_upstream(
    edge: Edge, target: bytes, status: int
) -> None:
    answer = raw_request(edge.url, target, headers=AUTH)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/unsafe-path") and problem["errors"][0]["field"] == "path"
    assert edge.upstream.received == []


@pytest.mark.parametrize(
    ("target", "received"),
    [
        (b"/api/echo/x?page=2&q=%2F%3F%23", ("/e/x", "page=2&q=%2F%3F%23")),
        (b"/api/echo/%41b", ("/e/Ab", "")),
        (b"/api/echo/a%20b?x=%20", ("/e/a%20b", "x=%20")),
        (b"/api/echo/caf%c3%a9", ("/e/caf%C3%A9", "")),
        (b"/api/echo/a+b;v=1", ("/e/a+b;v=1", "")),
        (b"/api/echo/%252e%252e", ("/e/%252e%252e", "")),
        (b"/api/echo?a=1&a=2", ("/e", "a=1&a=2")),
    ],
)
@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_the_upstream_receives_the_normalised_path_and_the_query_as_sent(
    make_edge: EdgeFactory, client: str, target: bytes, received: tuple[str, str]
) -> None:
    edge = make_edge(http_client=client)
    answer = raw_request(edge.url, target, headers=AUTH)
    assert answer.status == 200
    assert edge.upstream.received == [received]


def test_a_method_no_rule_allows_is_405_with_allow_and_an_unrouted_path_404(
    make_edge: EdgeFactory,
) -> None:
    from flotilla.edge import ROUTE_TABLE

    edge = make_edge(
        routes=ROUTE_TABLE,
        upstreams={"orders-api": "http://127.0.0.1:9", "inventory-api": "http://127.0.0.1:9"},
        api_keys=f"shop:{hash_api_key(API_KEY)}",
    )
    with edge.client() as c:
        wrong_method = c.delete("/api/orders/42")
        reservations = c.post("/api/inventory/reservations", json={"items": []})
        docs = c.get("/api/inventory/docs")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.json()["errors"][0]["field"] == "method"
    assert reservations.status_code == 404 and docs.status_code == 404


def test_a_route_whose_scope_the_caller_lacks_is_403(make_edge: EdgeFactory) -> None:
    read_only = "read-only-key-0001"
    edge = make_edge(
        api_keys=f"tester:{hash_api_key(API_KEY)}:test:read,ro:{hash_api_key(read_only)}:other"
    )
    with edge.client() as allowed:
        assert allowed.get("/api/echo/x").status_code == 200
    refused = httpx.get(f"{edge.url}/api/echo/x", headers={"X-API-Key": read_only})
    assert refused.status_code == 403
    assert "test:read" in refused.json()["detail"]
    assert edge.upstream.received == [("/e/x", "")]


def test_the_edge_sets_client_id_and_scopes_and_a_client_cannot(edge: Edge) -> None:
    forged = {"X-Client-Id": "key:someone-else", "X-Client-Scopes": "orders:admin"}
    with edge.client(**forged) as c:
        received = c.get("/api/echo/x").json()["headers"]
    assert received["x-client-id"] == "key:tester"
    assert received["x-client-scopes"] == "test:read test:write"


def test_requests_without_credentials_are_rate_limited_per_address(
    make_edge: EdgeFactory,
) -> None:
    """50 requests in a row with no or wrong credentials from one address: after the burst
    they get 429 instead of 401, so guessing costs time. (The refill is slow enough that a
    busy machine, taking seconds for the 50, does not refill the bucket.)"""
    edge = make_edge(anonymous_rate_limit_per_second=0.2, anonymous_rate_limit_burst=20)
    with httpx.Client(base_url=edge.url) as c:
        answers = [
            c.get("/api/echo/x", headers={"X-API-Key": f"guess-{n}"} if n % 2 else {})
            for n in range(50)
        ]
    codes = [a.status_code for a in answers]
    assert set(codes[:15]) == {401}
    assert codes.count(429) >= 25
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1
    assert edge.upstream.received == []


def test_a_right_guess_during_a_storm_of_wrong_ones_gains_nothing(
    make_edge: EdgeFactory,
) -> None:
    """Once an address is barred for guessing, even the right key is refused from it (429),
    so a guesser cannot tell a hit; other addresses' clients are not affected."""
    edge = make_edge(anonymous_rate_limit_per_second=1, anonymous_rate_limit_burst=5)
    with httpx.Client(base_url=edge.url) as c:
        for n in range(10):
            c.get("/api/echo/x", headers={"X-API-Key": f"guess-{n}"})
        hit = c.get("/api/echo/x", headers={"X-API-Key": API_KEY})
    assert hit.status_code == 429
    assert edge.upstream.received == []


def test_an_untrusted_callers_trace_context_becomes_a_link_and_its_baggage_is_dropped(
    make_edge: EdgeFactory, spans: InMemorySpanExporter
) -> None:
    edge = make_edge(trust_trace_context=False)
    caller_trace, caller_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    outside = {
        "traceparent": f"00-{caller_trace}-{caller_span}-01",
        "baggage": "tenant=someone-else",
    }
    # NOTE: raw, because this process's instrumented httpx would inject its own context
    answer = raw_request(edge.url, b"/api/echo/x", headers={**AUTH, **outside})
    trace_id = answer.headers["x-trace-id"]
    assert trace_id != caller_trace
    received = answer.json()["headers"]
    assert received["traceparent"].split("-")[1] == trace_id
    assert "baggage" not in received
    (server,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == "GET /api/echo/{a}" and format(s.context.trace_id, "032x") == trace_id
    ]
    assert server.parent is None
    (link,) = server.links
    assert format(link.context.trace_id, "032x") == caller_trace
    assert format(link.context.span_id, "016x") == caller_span


def test_a_trusted_caller_continues_its_own_trace(edge: Edge, spans: InMemorySpanExporter) -> None:
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    traceparent = f"00-{caller_trace}-b7ad6b7169203331-01"
    answer = raw_request(edge.url, b"/api/echo/x", headers={**AUTH, "traceparent": traceparent})
    assert answer.headers["x-trace-id"] == caller_trace
    assert answer.json()["headers"]["traceparent"].split("-")[1] == caller_trace


def test_location_and_content_location_are_rewritten_to_the_public_prefix(edge: Edge) -> None:
    with edge.client() as c:
        made = c.post("/api/echo/made")
    assert made.status_code == 201
    assert made.headers["location"] == "/api/echo/made/7"
    assert made.headers["content-location"] == "/api/echo/made/7"


def test_head_answers_the_headers_a_get_would_with_no_body(edge: Edge) -> None:
    with edge.client() as c:
        got = c.get("/api/flaky")
    head = raw_request(edge.url, b"/api/flaky", method=b"HEAD", headers=AUTH)
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(got.content) > 0
    assert head.headers["content-type"] == "application/json"


def test_retries_wait_the_retry_after_an_upstream_asks_for_or_pass_its_answer_on(
    make_edge: EdgeFactory,
) -> None:
    """Retry-After: 1 is waited out before each retry; Retry-After: 30 is longer than the
    edge will hold a client, so the upstream's answer goes back at once, not retried."""
    edge = make_edge(retries=2)
    with edge.client() as c:
        started = time.monotonic()
        waited = c.get("/api/flaky/dependency-down")
        elapsed = time.monotonic() - started
        busy = c.get("/api/flaky/busy")
    assert edge.upstream.hits["dependency-down"] == 3 and elapsed >= 2.0
    assert waited.status_code == 503
    assert edge.upstream.hits["busy"] == 1
    assert busy.status_code == 503 and busy.headers["retry-after"] == "30"


def test_a_503_about_the_upstreams_own_dependency_does_not_open_its_circuit(
    make_edge: EdgeFactory,
) -> None:
    """orders-api answering "inventory unavailable" is orders-api working: its other routes
    must stay open. The marker header stays inside the platform."""
    edge = make_edge(retries=0, breaker_failures=2, breaker_cooldown_s=30)
    with edge.client() as c:
        answers = [c.get("/api/flaky/dependency-down") for _ in range(5)]
        after = c.get("/api/flaky/ok")
    assert [a.status_code for a in answers] == [503] * 5
    assert all(a.json() == {"title": "Inventory unavailable"} for a in answers)
    assert all(DEPENDENCY_FAILURE_HEADER.lower() not in a.headers for a in answers)
    assert after.status_code == 200
    assert edge.upstream.hits["dependency-down"] == 5
