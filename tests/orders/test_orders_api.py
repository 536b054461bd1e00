"""Placing, reading, listing and cancelling orders over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from flotilla.orders import create_app, migrate
from tests.orders.conftest import Orders, orders_client, orders_settings
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-KAYAK", "quantity": 2}]}


def test_an_order_is_accepted_and_its_stock_reserved(orders: Orders) -> None:
    before = orders.stock("FLT-KAYAK")
    answer = orders.client.post("/orders", json=ORDER)
    assert answer.status_code == 202
    order = answer.json()
    assert order["status"] == "accepted"
    assert answer.headers["location"] == f"/orders/{order['id']}"
    assert orders.stock("FLT-KAYAK") == before - 2
    assert orders.client.get(f"/orders/{order['id']}").json()["status"] == "accepted"


def test_same_idempotency_key_and_body_is_the_same_order(orders: Orders) -> None:
    headers = {"Idempotency-Key": "checkout-123"}
    before = orders.stock("FLT-KAYAK")
    first = orders.client.post("/orders", json=ORDER, headers=headers)
    again = orders.client.post("/orders", json=ORDER, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["location"] == f"/orders/{first.json()['id']}"
    assert orders.client.get("/orders").json()["items"] == [first.json()]
    assert orders.stock("FLT-KAYAK") == before - 2  # reserved once


def test_concurrent_retries_with_one_idempotency_key_make_one_order(orders: Orders) -> None:
    """A client that retries before the first answer arrived still gets a single order."""
    headers = {"Idempotency-Key": "checkout-race"}
    before = orders.stock("FLT-KAYAK")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: orders.client.post("/orders", json=ORDER, headers=headers), range(4))
        )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert orders.stock("FLT-KAYAK") == before - 2


def test_idempotency_key_reused_with_another_body_is_refused(orders: Orders) -> None:
    headers = {"Idempotency-Key": "checkout-456"}
    orders.client.post("/orders", json=ORDER, headers=headers)
    other = {**ORDER, "customer_email": "bob@example.com"}
    answer = orders.client.post("/orders", json=other, headers=headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"


def test_not_enough_stock_is_409_naming_the_sku(orders: Orders) -> None:
    body = {
        "customer_email": "ada@example.com",
        "items": [{"sku": "FLT-VEST", "quantity": 1}, {"sku": "FLT-KAYAK", "quantity": 1000}],
    }
    for _ in range(60):  # 60 x 1000 > the 50,000 in stock
        answer = orders.client.post("/orders", json=body)
        if answer.status_code != 202:
            break
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["sku"] == "FLT-KAYAK"
    assert answer.json()["errors"][0]["field"] == "items.1.quantity"


def test_unknown_sku_is_422_naming_it(orders: Orders) -> None:
    answer = orders.client.post(
        "/orders",
        json={
            "customer_email": "ada@example.com",
            "items": [{"sku": "NO-SUCH-SKU", "quantity": 1}],
        },
    )
    assert answer.status_code == 422
    assert answer.json()["sku"] == "NO-SUCH-SKU"
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"customer_email": "not-an-email", "items": [{"sku": "FLT-KAYAK", "quantity": 1}]},
            "customer_email",
        ),
        ({"customer_email": "ada@example.com", "items": []}, "items"),
        (
            {"customer_email": "ada@example.com", "items": [{"sku": "FLT-KAYAK", "quantity": 0}]},
            "items.0.quantity",
        ),
    ],
)
def test_invalid_order_is_422_naming_the_field(
    orders: Orders, body: dict[str, object], field: str
) -> None:
    answer = orders.client.post("/orders", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_malformed_json_is_400_problem(orders: Orders) -> None:
    answer = orders.client.post(
        "/orders", content=b'{"customer_email": ', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


def test_inventory_down_is_503_with_retry_after(
    database_url: str, unreachable_broker_url: str
) -> None:
    migrate(database_url)
    settings = orders_settings(
        database_url, f"http://127.0.0.1:{free_port()}", unreachable_broker_url
    )
    with orders_client(create_app(settings, relay=False)) as client:
        answer = client.post("/orders", json=ORDER)
        assert client.get("/orders").json()["items"] == []
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["content-type"] == "application/problem+json"
    # NOTE: the vocabulary the edge answers its own upstream failures in; marked as a
    # dependency's failure, so the edge does not count it against orders-api
    problem = answer.json()
    assert problem["type"].endswith("/upstream-unreachable")
    assert problem["upstream"] == "inventory-api"
    assert answer.headers["flotilla-failed-dependency"] == "inventory-api"


def test_listing_pages_newest_first_with_a_status_filter(orders: Orders) -> None:
    ids = [orders.client.post("/orders", json=ORDER).json()["id"] for _ in range(5)]
    orders.client.post(f"/orders/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "status": "accepted"} | ({"cursor": cursor} if cursor else {})
        page = orders.client.get("/orders", params=params).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids[1:]))
    assert orders.client.get("/orders", params={"cursor": "garbage!"}).status_code == 422
    assert orders.client.get("/orders", params={"status": "lost"}).status_code == 422


def test_cancel_gives_the_stock_back_and_is_idempotent(orders: Orders) -> None:
    before = orders.stock("FLT-KAYAK")
    order = orders.client.post("/orders", json=ORDER).json()
    cancelled = orders.client.post(f"/orders/{order['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert orders.client.post(f"/orders/{order['id']}/cancel").status_code == 200
    assert orders.stock("FLT-KAYAK") == before
    assert orders.client.get(f"/orders/{uuid.uuid4()}").status_code == 404
    assert orders.client.get("/orders/nope").status_code == 422  # not an order id at all


def test_an_order_that_cannot_be_stored_gives_its_stock_back(
    orders: Orders, database_url: str
) -> None:
    """The database fails after inventory reserved: 500 problem, and nothing stays held."""
    before = orders.stock("FLT-KAYAK")
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE outbox"))  # the order's insert now fails
    engine.dispose()
    client = orders_client(orders.client.app, raise_server_exceptions=False)
    answer = client.post("/orders", json=ORDER)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in answer.text
    assert orders.stock("FLT-KAYAK") == before
    assert orders.client.get("/orders").json()["items"] == []


def test_orders_api_stays_ready_and_accepts_orders_while_the_broker_is_down(
    orders: Orders,
) -> None:
    """Readiness means "I can do my own job": with the broker unreachable orders-api still
    accepts orders (the outbox holds them), so it stays ready and only reports the broker."""
    assert orders.client.get("/healthz").status_code == 200
    ready = orders.client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert (checks["database"]["ok"], checks["broker"]["ok"]) == (True, False)
    assert checks["broker"]["required"] is False
    assert orders.client.post("/orders", json=ORDER).status_code == 202


def test_readiness_is_ok_with_database_and_broker_up(
    database_url: str, inventory_url: str, redis_url: str
) -> None:
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, redis_url)
    with orders_client(create_app(settings, relay=False)) as client:
        assert client.get("/readyz").status_code == 200
