"""A commit whose answer is lost: PostgreSQL ran the ``COMMIT`` of a new order, then the
connection broke before its answer came back (a TCP proxy drops exactly that reply). The
order may be stored; its stock must not be released before orders-api knows.

Real PostgreSQL behind tests/support/slow_proxy.py, the real inventory-api over HTTP."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from flotilla.core import broker_from_url
from flotilla.orders import create_app, migrate
from tests.orders.conftest import orders_client, orders_settings
from tests.support.slow_proxy import SlowProxy, slow_proxy

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-VEST", "quantity": 2}]}


def _via(url: str, proxy: SlowProxy) -> str:
    return (
        sa.make_url(url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


def _stored(postgres_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, reservation_id FROM orders"))
            return [(str(a), str(b)) for a, b in rows]
    finally:
        engine.dispose()


def test_an_order_whose_commit_answer_was_lost_is_found_stored_and_keeps_its_stock(
    postgres_url: str, inventory_url: str, unreachable_broker_url: str
) -> None:
    migrate(postgres_url)
    port = urlsplit(postgres_url.replace("+psycopg", "")).port or 5432
    with slow_proxy(port) as proxy, httpx.Client(base_url=inventory_url) as inventory:
        settings = orders_settings(_via(postgres_url, proxy), inventory_url, unreachable_broker_url)
        broker = broker_from_url(unreachable_broker_url)
        with orders_client(create_app(settings, broker=broker, relay=False)) as client:
            before = inventory.get("/products/FLT-VEST").json()["available"]
            proxy.drop_reply_when = lambda chunk: b"COMMIT" in chunk
            answer = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
            assert proxy.replies_dropped == 1
    assert answer.status_code == 202, answer.text
    ((order_id, reservation_id),) = _stored(postgres_url)
    assert answer.json()["id"] == order_id
    with httpx.Client(base_url=inventory_url) as inventory:
        held = inventory.get(f"/reservations/{reservation_id}").json()
        assert held["status"] == "held"  # not released: the order that holds it is stored
        assert inventory.get("/products/FLT-VEST").json()["available"] == before - 2


def test_when_the_lookup_cannot_tell_the_stock_stays_held_and_a_retry_gets_the_one_order(
    postgres_url: str, inventory_url: str, unreachable_broker_url: str
) -> None:
    migrate(postgres_url)
    port = urlsplit(postgres_url.replace("+psycopg", "")).port or 5432
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex[:6]}"}
    with slow_proxy(port) as proxy:
        settings = orders_settings(_via(postgres_url, proxy), inventory_url, unreachable_broker_url)
        broker = broker_from_url(unreachable_broker_url)
        with orders_client(create_app(settings, broker=broker, relay=False)) as client:

            def lose_and_partition(chunk: bytes) -> bool:
                if b"COMMIT" not in chunk:
                    return False
                proxy.refuse_for(3)  # the database unreachable for a while after it
                return True

            proxy.drop_reply_when = lose_and_partition
            first = client.post("/orders", json=ORDER, headers=key)
            assert first.status_code == 503, first.text
            assert first.headers["content-type"] == "application/problem+json"
            assert first.json()["type"].endswith("/outcome-unknown")
            assert first.headers["retry-after"]
            ((order_id, reservation_id),) = _stored(postgres_url)  # it was stored after all
            with httpx.Client(base_url=inventory_url) as inventory:
                assert inventory.get(f"/reservations/{reservation_id}").json()["status"] == "held"
            time.sleep(3.5)
            again = client.post("/orders", json=ORDER, headers=key)
    assert again.status_code in (200, 202), again.text
    assert again.json()["id"] == order_id
    assert len(_stored(postgres_url)) == 1
