"""The edge's decisions as plain functions: routing, authentication, breaker, headers."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from flotilla.edge import (
    Authenticator,
    AuthError,
    CircuitBreaker,
    EdgeSettings,
    Route,
    downstream_response_headers,
    hash_api_key,
    parse_api_keys,
    resolve,
    upstream_request_headers,
)

ROUTES = [
    Route(name="orders-api", prefix="/api/orders", upstream="http://o:8001", rewrite="/orders"),
    Route(name="inventory-api", prefix="/api/inventory", upstream="http://i:8002/", rewrite=""),
    Route(name="special", prefix="/api/orders/special", upstream="http://s", rewrite="/x"),
]


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/api/orders", "", "http://o:8001/orders"),
        ("/api/orders/42", "a=1", "http://o:8001/orders/42?a=1"),
        ("/api/inventory/products", "", "http://i:8002/products"),
        ("/api/inventory", "", "http://i:8002/"),
        ("/api/orders/special/1", "", "http://s/x/1"),
        ("/api/ordersx", "", None),
        ("/healthz", "", None),
    ],
)
def test_routes_match_the_longest_prefix_on_segment_boundaries(
    path: str, query: str, expected: str | None
) -> None:
    destination = resolve(ROUTES, path, query)
    assert (destination.url if destination else None) == expected


SECRET = "s3cret-for-tests-only-and-long-enough-for-hs256"


def authenticator() -> Authenticator:
    return Authenticator(
        api_keys=parse_api_keys(f"shop:{hash_api_key('k-1')}"),
        jwt_key=SECRET,
        jwt_algorithms=("HS256",),
        jwt_issuer="iss",
        jwt_audience="aud",
    )


def token(**claims: object) -> str:
    # NOTE: parametrized tokens are made at collection time; give them room to outlive the run
    base = {"sub": "ada", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 24 * 3600}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


def test_api_key_and_jwt_identify_the_client() -> None:
    auth = authenticator()
    assert auth.authenticate("Bearer k-1", None).id == "key:shop"
    assert auth.authenticate(None, "k-1").id == "key:shop"
    assert auth.authenticate(f"Bearer {token()}", None).id == "jwt:ada"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "send Authorization"),
        ("Basic abc", "Bearer scheme"),
        ("Bearer wrong-key", "not known"),
        (f"Bearer {token(exp=int(time.time()) - 10)}", "expired"),
        (f"Bearer {token(aud='other')}", "audience"),
        (f"Bearer {token(iss='other')}", "issuer"),
    ],
)
def test_bad_credentials_say_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        authenticator().authenticate(header, None)


def test_api_keys_must_be_configured_as_hashes() -> None:
    with pytest.raises(ValueError, match="client:sha256hex"):
        parse_api_keys("shop:plaintext-key")


def state(breaker: CircuitBreaker) -> str:
    """The breaker's state, read afresh (mypy would otherwise narrow it between steps)."""
    return breaker.state


def test_breaker_opens_after_failures_then_probes_once() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures_to_open=3, cooldown_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.allow() is None
        breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.allow() == 10
    now[0] = 4
    assert breaker.allow() == 6  # Retry-After counts down to the probe
    now[0] = 10.5
    assert breaker.allow() is None  # the one probe
    assert state(breaker) == "half-open"
    assert breaker.allow() is not None  # everyone else waits for it
    breaker.record_failure()
    assert state(breaker) == "open"
    now[0] = 21
    assert breaker.allow() is None
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.allow() is None


def test_hop_by_hop_and_credentials_stay_at_the_edge() -> None:
    headers = upstream_request_headers(
        [
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "5"),
            ("Authorization", "Bearer k"),
            ("Accept", "application/json"),
            ("X-Forwarded-For", "6.6.6.6"),
        ],
        client_ip="10.0.0.1",
        scheme="http",
        host="edge",
        client_id="key:shop",
        request_id="r1",
        trust_forwarded=False,
    )
    assert headers["accept"] == "application/json"
    assert headers["x-forwarded-for"] == "10.0.0.1"  # a client cannot forge its address
    assert headers["x-client-id"] == "key:shop"
    assert not {"connection", "x-private", "keep-alive", "authorization"} & set(headers)
    back = downstream_response_headers([("Transfer-Encoding", "chunked"), ("X-A", "1")])
    assert back == [("X-A", "1")]


def test_a_probe_that_never_reports_back_does_not_keep_the_circuit_shut() -> None:
    """A client that goes away during the half-open probe leaves no outcome to record."""
    now = [0.0]
    breaker = CircuitBreaker(failures_to_open=1, cooldown_s=5, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 5
    assert breaker.allow() is None  # the probe, whose outcome is lost
    now[0] = 7
    assert breaker.allow() is not None
    now[0] = 10
    assert breaker.allow() is None  # a fresh probe after another cool-down
    breaker.record_success()
    assert (state(breaker), breaker.failures) == ("closed", 0)


def test_failures_below_the_threshold_keep_the_circuit_closed_and_success_resets_them() -> None:
    breaker = CircuitBreaker(failures_to_open=3, cooldown_s=5, clock=lambda: 0.0)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.allow() is None


def test_proxy_headers_and_forged_forwarding_never_reach_the_upstream() -> None:
    headers = upstream_request_headers(
        [
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-api-key", "k"),
            ("x-client-id", "admin"),
            ("x-request-id", "forged"),
        ],
        client_ip="10.0.0.1",
        scheme="https",
        host="shop.example",
        client_id="jwt:ada",
        request_id="r1",
        trust_forwarded=False,
    )
    assert headers == {
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "shop.example",
        "x-client-id": "jwt:ada",
        "x-request-id": "r1",
    }


def test_behind_a_trusted_proxy_the_forwarded_chain_is_extended() -> None:
    headers = upstream_request_headers(
        [("x-forwarded-for", "1.2.3.4")],
        client_ip="10.0.0.1",
        scheme="http",
        host="edge",
        client_id="c",
        request_id="r",
        trust_forwarded=True,
    )
    assert headers["x-forwarded-for"] == "1.2.3.4, 10.0.0.1"


def test_hop_by_hop_answer_headers_stay_at_the_edge() -> None:
    back = downstream_response_headers(
        [
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Trailer", "X-Sum"),
            ("Upgrade", "h2c"),
            ("Content-Type", "application/json"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ]
    )
    assert back == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]


def test_the_documented_plain_algorithm_list_is_accepted() -> None:
    assert EdgeSettings(jwt_algorithms="HS256").jwt_algorithms == ["HS256"]  # type: ignore[arg-type]
    assert EdgeSettings(jwt_algorithms="HS256, HS512").jwt_algorithms == ["HS256", "HS512"]  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="never 'none'"):
        EdgeSettings(jwt_algorithms="none")  # type: ignore[arg-type]


def test_the_placeholder_jwt_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="FLOTILLA_EDGE_JWT_SECRET"):
        EdgeSettings(environment="production")
    EdgeSettings(environment="production", jwt_secret="a-real-secret-from-the-vault")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "api_keys", ["shop:plaintext", f"shop:{'z' * 64}", f":{hash_api_key('k')}"]
)
def test_misconfigured_api_keys_stop_the_edge_at_start(api_keys: str) -> None:
    with pytest.raises(ValidationError, match="client:sha256hex"):
        EdgeSettings(api_keys=api_keys)


def test_a_route_prefix_must_be_a_path_and_its_upstream_a_url() -> None:
    with pytest.raises(ValidationError, match="starts with '/'"):
        Route(name="x", prefix="api", upstream="http://x")
    with pytest.raises(ValidationError, match="http"):
        Route(name="x", prefix="/api", upstream="x:80")
