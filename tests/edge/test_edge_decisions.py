"""The edge's decisions as plain functions: routing, authentication, breaker, headers."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from flotilla.contracts.scopes import CUSTOMER_SCOPES
from flotilla.edge import (
    ROUTE_TABLE,
    Authenticator,
    AuthError,
    CircuitBreaker,
    Destination,
    EdgeSettings,
    MethodNotAllowed,
    NoRoute,
    Route,
    Rule,
    UnsafePath,
    downstream_response_headers,
    hash_api_key,
    parse_api_keys,
    parse_path,
    public_location,
    resolve,
    retry_after_s,
    upstream_request_headers,
)

pytestmark = pytest.mark.integration

ROUTES = [
    *ROUTE_TABLE,
    Route(
        name="special",
        prefix="/api/orders/special",
        upstream="special",
        rewrite="/x",
        rules=[Rule(methods=["GET"], path="/{n}", scope="orders:read")],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/orders", ("orders-api", "/orders", "orders:write")),
        ("GET", "/api/orders", ("orders-api", "/orders", "orders:read")),
        ("GET", "/api/orders/42", ("orders-api", "/orders/42", "orders:read")),
        ("HEAD", "/api/orders/42", ("orders-api", "/orders/42", "orders:read")),
        ("POST", "/api/orders/42/cancel", ("orders-api", "/orders/42/cancel", "orders:write")),
        ("GET", "/api/orders/a%20b", ("orders-api", "/orders/a%20b", "orders:read")),
        ("GET", "/api/inventory/products", ("inventory-api", "/products", "inventory:read")),
        (
            "GET",
            "/api/inventory/products/KAYAK",
            ("inventory-api", "/products/KAYAK", "inventory:read"),
        ),
        ("GET", "/api/orders/special/1", ("special", "/x/1", "orders:read")),
        # reservations are internal: no route reaches them, whatever the method
        ("POST", "/api/inventory/reservations", 404),
        ("POST", "/api/inventory/reservations/r-1/release", 404),
        ("GET", "/api/inventory/readyz", 404),
        ("GET", "/api/inventory/openapi.json", 404),
        ("GET", "/api/orders/42/cancel/now", 404),
        ("GET", "/api/ordersx", 404),
        ("GET", "/healthz", 404),
        ("GET", "/", 404),
        # a covered path with a method its rules do not allow
        ("DELETE", "/api/orders/42", (405, ("GET", "HEAD"))),
        ("GET", "/api/orders/42/cancel", (405, ("POST",))),
        ("PUT", "/api/orders", (405, ("GET", "HEAD", "POST"))),
        ("POST", "/api/inventory/products", (405, ("GET", "HEAD"))),
    ],
)
def test_only_what_the_route_table_names_is_routed(
    method: str, path: str, expected: object
) -> None:
    found = resolve(ROUTES, parse_path(path.encode()), method)
    if isinstance(found, Destination):
        assert (found.route.name, found.path, found.rule.scope) == expected
    elif isinstance(found, MethodNotAllowed):
        assert (405, found.allow) == expected
    else:
        assert isinstance(found, NoRoute) and expected == 404


HOSTILE_PATHS = [
    (b"/api/orders/../docs", 400, "dot segment"),
    (b"/api/orders/./42", 400, "dot segment"),
    (b"/api/orders/%2e%2e/openapi.json", 400, "dot segment"),
    (b"/api/orders/%2E%2E/openapi.json", 400, "dot segment"),
    (b"/api/orders/.%2e/readyz", 400, "dot segment"),
    (b"/api/orders/%2e/42", 400, "dot segment"),
    (b"/api/orders/..%2freadyz", 400, "'/'"),
    (b"/api/orders/..%2Freadyz", 400, "'/'"),
    (b"/api/orders/42%2Fcancel", 400, "'/'"),
    (b"/api/orders/42%3Fadmin=1", 400, "'?'"),
    (b"/api/orders/42%23frag", 400, "'#'"),
    (b"/api/orders/42#frag", 400, "'#'"),
    (b"/api/orders/..\\docs", 400, "backslash"),
    (b"/api/orders/%5c..%5cdocs", 400, "backslash"),
    (b"/api/orders/42%00", 400, "control character"),
    (b"/api/orders/42%0d%0aX-Injected:%201", 400, "control character"),
    (b"/api/orders/%zz", 400, "%XX"),
    (b"/api/orders/%", 400, "%XX"),
    (b"/api/orders/%ff%fe", 400, "UTF-8"),
    (b"/api/orders//42", 400, "empty segment"),
    (b"/api/orders/", 400, "empty segment"),
    (b"//api/orders", 400, "empty segment"),
    (b"/api/orders/\xc3\xa9", 400, "percent-encoded"),
    (b"api/orders", 400, "start with '/'"),
    (b"/api/orders/" + b"a" * 3000, 414, "longer than"),
]


@pytest.mark.parametrize(("raw", "status", "message"), HOSTILE_PATHS)
def test_hostile_paths_are_refused_before_routing(raw: bytes, status: int, message: str) -> None:
    with pytest.raises(UnsafePath) as refused:
        parse_path(raw)
    assert refused.value.status == status
    assert message in refused.value.detail


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        (b"/api/orders/%41bc", "/orders/Abc"),  # unreserved escapes have one spelling
        (b"/api/orders/a%20b", "/orders/a%20b"),
        (b"/api/orders/caf%C3%A9", "/orders/caf%C3%A9"),
        (b"/api/orders/a+b;c=d@e", "/orders/a+b;c=d@e"),
        (b"/api/orders/%252e%252e", "/orders/%252e%252e"),  # a literal "%2e%2e", not a dot
        (b"/api/orders/~x_y-z.1", "/orders/~x_y-z.1"),
    ],
)
def test_what_is_forwarded_is_the_normalised_path_encoded_again(raw: bytes, forwarded: str) -> None:
    found = resolve(ROUTES, parse_path(raw), "GET")
    assert isinstance(found, Destination) and found.path == forwarded


SECRET = "s3cret-for-tests-only-and-long-enough-for-hs256"


def authenticator(leeway_s: float = 30.0) -> Authenticator:
    return Authenticator(
        api_keys=parse_api_keys(
            f"shop:{hash_api_key('k-1')},ops:{hash_api_key('k-2')}:orders:read orders:admin"
        ),
        jwt_key=SECRET,
        jwt_algorithms=("HS256",),
        jwt_issuer="iss",
        jwt_audience="aud",
        jwt_leeway_s=leeway_s,
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


def test_keys_and_tokens_carry_their_scopes() -> None:
    """A key without scopes gets the customer's; a key's own list replaces them; a JWT has
    exactly what its space-separated ``scope`` claim says (none without one)."""
    auth = authenticator()
    assert auth.authenticate("Bearer k-1", None).scopes == frozenset(CUSTOMER_SCOPES)
    assert auth.authenticate("Bearer k-2", None).scopes == {"orders:read", "orders:admin"}
    scoped = auth.authenticate(f"Bearer {token(scope='orders:read inventory:read')}", None)
    assert scoped.scopes == {"orders:read", "inventory:read"}
    assert auth.authenticate(f"Bearer {token()}", None).scopes == frozenset()
    with pytest.raises(AuthError, match="space-separated"):
        auth.authenticate(f"Bearer {token(scope=['orders:read'])}", None)


def test_tokens_from_a_clock_a_little_ahead_are_accepted_within_the_leeway() -> None:
    """Another node's clock 5 s ahead: its fresh token (iat, nbf 5 s in the future) passes
    with the default 30 s leeway, and is refused with none; an expired token passes only
    within the leeway."""
    ahead = int(time.time()) + 5
    fresh = f"Bearer {token(iat=ahead, nbf=ahead)}"
    assert authenticator().authenticate(fresh, None).id == "jwt:ada"
    with pytest.raises(AuthError, match="not valid yet"):
        authenticator(leeway_s=0).authenticate(fresh, None)
    just_expired = f"Bearer {token(exp=int(time.time()) - 10)}"
    assert authenticator().authenticate(just_expired, None).id == "jwt:ada"
    with pytest.raises(AuthError, match="expired"):
        authenticator(leeway_s=0).authenticate(just_expired, None)
    with pytest.raises(AuthError, match="not valid yet"):
        authenticator().authenticate(f"Bearer {token(nbf=int(time.time()) + 120)}", None)


def test_overlong_credentials_are_refused_unread() -> None:
    with pytest.raises(AuthError, match="longer than"):
        authenticator().authenticate("Bearer " + "k" * 5000, None)
    with pytest.raises(AuthError, match="longer than"):
        authenticator().authenticate(None, "k" * 5000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/orders/42", "/api/orders/42"),
        ("/orders", "/api/orders"),
        ("/orders/42?x=1", "/api/orders/42?x=1"),
        ("http://o:8001/orders/42", "/api/orders/42"),
        ("https://elsewhere.example/orders/42", "https://elsewhere.example/orders/42"),
        ("/ordersx/1", "/ordersx/1"),
    ],
)
def test_an_upstream_location_is_rewritten_to_the_public_prefix(value: str, expected: str) -> None:
    orders = next(r for r in ROUTE_TABLE if r.name == "orders-api")
    assert public_location(value, orders, "http://o:8001") == expected
    inventory = next(r for r in ROUTE_TABLE if r.name == "inventory-api")
    assert public_location("/products/K", inventory, "http://i") == "/api/inventory/products/K"


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert retry_after_s("3") == 3
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 50 < (retry_after_s(later) or 0) <= 60


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "send Authorization"),
        ("Basic abc", "Bearer scheme"),
        ("Bearer wrong-key", "not known"),
        (f"Bearer {token(exp=int(time.time()) - 120)}", "expired"),  # beyond the leeway
        (f"Bearer {token(aud='other')}", "audience"),
        (f"Bearer {token(iss='other')}", "issuer"),
    ],
    # NOTE: the ids name the case, not the token (made at collection, different in each
    # pytest-xdist worker)
    ids=["none", "basic", "unknown-key", "expired-jwt", "other-audience", "other-issuer"],
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
            ("x-client-scopes", "orders:admin"),
            ("x-request-id", "forged"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("baggage", "tenant=someone-else"),
        ],
        client_ip="10.0.0.1",
        scheme="https",
        host="shop.example",
        client_id="jwt:ada",
        client_scopes=("orders:write", "orders:read"),
        request_id="r1",
        trust_forwarded=False,
    )
    assert headers == {
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "shop.example",
        "x-client-id": "jwt:ada",
        "x-client-scopes": "orders:read orders:write",
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


def test_a_route_prefix_must_be_a_path_and_every_upstream_a_url() -> None:
    rule = Rule(methods=["GET"], path="", scope="x")
    with pytest.raises(ValidationError, match="starts with '/'"):
        Route(name="x", prefix="api", upstream="x", rules=[rule])
    with pytest.raises(ValidationError, match="http"):
        EdgeSettings(upstreams={"orders-api": "x:80", "inventory-api": "http://i"})
    with pytest.raises(ValidationError, match="FLOTILLA_EDGE_UPSTREAMS names no address"):
        EdgeSettings(upstreams={"orders-api": "http://o"})
    with pytest.raises(ValidationError, match="placeholder"):
        Rule(methods=["GET"], path="orders/", scope="x")
