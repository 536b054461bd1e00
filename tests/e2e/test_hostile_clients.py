"""The acceptance of "closed to hostile clients", on the platform `make run` starts: a real
`flotilla up`, driven over HTTP through its edge as a hostile client would."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.orders import ORDER
from tests.support.raw_http import raw_request

pytestmark = pytest.mark.e2e

#: what `flotilla up` leaves the edge's JWT settings at (local development only)
LOCAL_JWT = {"key": "local-dev-secret-not-for-production-use", "iss": "flotilla-local"}


def customer_token(sub: str) -> str:
    claims = {
        "sub": sub,
        "iss": LOCAL_JWT["iss"],
        "aud": "flotilla",
        "exp": int(time.time()) + 600,
        "scope": "orders:read orders:write inventory:read",
    }
    return jwt.encode(claims, LOCAL_JWT["key"], algorithm="HS256")


def test_the_whole_stock_cannot_be_reserved_through_the_edge(platform: Platform) -> None:
    with platform.client() as client:
        before = client.get("/api/inventory/products/FLT-KAYAK").json()["available"]
        grab = client.post(
            "/api/inventory/reservations",
            json={"reference": "hoard", "items": [{"sku": "FLT-KAYAK", "quantity": 40_000}]},
        )
        after = client.get("/api/inventory/products/FLT-KAYAK").json()["available"]
    assert grab.status_code == 404
    assert grab.headers["content-type"] == "application/problem+json"
    assert after == before


def test_a_dot_segment_is_a_400_problem(platform: Platform) -> None:
    answer = raw_request(
        platform.edge,
        b"/api/orders/../docs",
        headers={"Authorization": f"Bearer {platform.api_key}"},
    )
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "path"


def test_one_clients_order_is_not_found_by_another_but_by_the_operator(
    platform: Platform,
) -> None:
    with platform.client() as local:
        placed = local.post("/api/orders", json=ORDER).json()
    other = {"Authorization": f"Bearer {customer_token('bob')}"}
    seen = httpx.get(f"{platform.edge}/api/orders/{placed['id']}", headers=other)
    cancelled = httpx.post(f"{platform.edge}/api/orders/{placed['id']}/cancel", headers=other)
    listed = httpx.get(f"{platform.edge}/api/orders", headers=other).json()["items"]
    assert (seen.status_code, cancelled.status_code) == (404, 404)
    assert placed["id"] not in {o["id"] for o in listed}
    operator = {"Authorization": f"Bearer {platform.operator_key}"}
    as_operator = httpx.get(f"{platform.edge}/api/orders/{placed['id']}", headers=operator)
    assert as_operator.status_code == 200 and as_operator.json()["client_id"] == "key:local"


def test_fifty_requests_a_second_without_credentials_start_getting_429(
    platform: Platform,
) -> None:
    """Fifty a second from one address of its own (127.0.0.2): the barred address is the
    guesser's, and the other e2e tests, all from 127.0.0.1, keep their budget."""
    started = time.monotonic()
    codes = []
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=platform.edge, transport=elsewhere) as anonymous:
        for n in range(50):
            codes.append(anonymous.get("/api/orders").status_code)
            time.sleep(max(0.0, started + (n + 1) / 50 - time.monotonic()))
    assert codes[0] == 401
    assert codes.count(429) >= 20, codes
