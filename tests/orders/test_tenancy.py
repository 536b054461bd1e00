"""Orders belong to the client that placed them (the edge's X-Client-Id): another client
neither sees, lists nor cancels them, and idempotency keys are each client's own. Real
orders-api (SQLite and PostgreSQL) and a real inventory-api."""

from __future__ import annotations

from typing import Any

import pytest

from tests.orders.conftest import Orders

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-KAYAK", "quantity": 1}]}


def as_client(client_id: str, scopes: str = "orders:read orders:write") -> dict[str, str]:
    return {"X-Client-Id": client_id, "X-Client-Scopes": scopes}


ADA, BOB = as_client("key:ada"), as_client("key:bob")
OPERATOR = as_client("key:ops", "orders:read orders:admin")


def place(orders: Orders, who: dict[str, str], **headers: str) -> dict[str, Any]:
    answer = orders.client.post("/orders", json=ORDER, headers={**who, **headers})
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_another_clients_order_is_not_found_listed_or_cancelled(orders: Orders) -> None:
    adas = place(orders, ADA)
    bobs = place(orders, BOB)
    assert adas["client_id"] == "key:ada"
    seen = orders.client.get(f"/orders/{adas['id']}", headers=BOB)
    cancelled = orders.client.post(f"/orders/{adas['id']}/cancel", headers=BOB)
    assert (seen.status_code, cancelled.status_code) == (404, 404)
    assert seen.json() == {**seen.json(), "type": "https://flotilla.dev/problems/unknown-order"}
    listed = orders.client.get("/orders", headers=BOB).json()["items"]
    assert [o["id"] for o in listed] == [bobs["id"]]
    # Ada's order is untouched, and still hers
    assert orders.client.get(f"/orders/{adas['id']}", headers=ADA).json()["status"] == "accepted"
    assert orders.client.post(f"/orders/{adas['id']}/cancel", headers=ADA).status_code == 200


def test_an_operator_sees_every_clients_orders(orders: Orders) -> None:
    adas, bobs = place(orders, ADA), place(orders, BOB)
    listed = orders.client.get("/orders", headers=OPERATOR).json()["items"]
    assert {o["id"] for o in listed} >= {adas["id"], bobs["id"]}
    assert orders.client.get(f"/orders/{bobs['id']}", headers=OPERATOR).status_code == 200


def test_two_clients_may_use_the_same_idempotency_key_for_different_orders(
    orders: Orders,
) -> None:
    before = orders.stock("FLT-KAYAK")
    adas = place(orders, ADA, **{"Idempotency-Key": "checkout-1"})
    bobs = place(orders, BOB, **{"Idempotency-Key": "checkout-1"})
    again = place(orders, ADA, **{"Idempotency-Key": "checkout-1"})
    assert adas["id"] != bobs["id"] and again["id"] == adas["id"]
    assert orders.stock("FLT-KAYAK") == before - 2


def test_a_request_that_did_not_come_through_the_edge_is_refused(orders: Orders) -> None:
    answer = orders.client.post(
        "/orders", json=ORDER, headers={"X-Client-Id": "", "X-Client-Scopes": ""}
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "X-Client-Id"
