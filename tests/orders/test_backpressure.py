"""Back-pressure: while the workers are too far behind, orders-api refuses new orders with
503 and Retry-After before it reserves anything, and accepts them again once there is room.

Real Redis as the broker, orders-api's own outbox relay publishing into the ``orders`` queue
(no worker consumes it: the workers are "behind"), the real inventory-api over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import httpx
import pytest
from fastapi.testclient import TestClient

from flotilla.core import broker_from_url
from flotilla.orders import create_app, migrate
from flotilla.orders._admission import Admission
from tests.orders.conftest import orders_client, orders_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-COMPASS", "quantity": 1}]}


@dataclass
class Shop:
    client: TestClient
    broker: dramatiq.Broker
    admission: Admission
    inventory: httpx.Client

    def queued(self) -> int:
        return int(self.broker.client.llen(f"{self.broker.namespace}:orders"))  # type: ignore[attr-defined]

    def available(self) -> int:
        return int(self.inventory.get("/products/FLT-COMPASS").json()["available"])


@contextmanager
def shop(tmp_path: Path, inventory_url: str, redis_url: str, **limits: float) -> Iterator[Shop]:
    database = f"sqlite:///{tmp_path}/orders.db"
    migrate(database)
    settings = orders_settings(database, inventory_url, redis_url).model_copy(update=limits)
    broker = broker_from_url(redis_url)
    app = create_app(settings, broker=broker)
    with orders_client(app) as client, httpx.Client(base_url=inventory_url) as inventory:
        yield Shop(client, broker, app.state.admission, inventory)
    broker.close()


@pytest.fixture
def slow_shop(tmp_path: Path, inventory_url: str, redis_url: str) -> Iterator[Shop]:
    with shop(tmp_path, inventory_url, redis_url, admission_max_wait_s=1.0) as running:
        yield running


def test_while_the_oldest_order_waits_too_long_new_ones_are_refused_before_any_reserve(
    slow_shop: Shop,
) -> None:
    first = slow_shop.client.post("/orders", json=ORDER)
    assert first.status_code == 202
    wait_for(lambda: slow_shop.queued() == 1, timeout_s=10)  # published, nobody consumes it
    time.sleep(1.2)
    slow_shop.admission.refresh()
    stock = slow_shop.available()
    key = {"Idempotency-Key": "later-1"}
    refused = slow_shop.client.post("/orders", json=ORDER, headers=key)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["type"].endswith("/orders-backlogged")
    assert "has waited" in refused.json()["detail"]
    assert slow_shop.available() == stock  # nothing was reserved for it
    # the workers catch up (the queue empties): the same key now gets its one order
    slow_shop.broker.flush("orders")
    slow_shop.admission.refresh()
    accepted = slow_shop.client.post("/orders", json=ORDER, headers=key)
    again = slow_shop.client.post("/orders", json=ORDER, headers=key)
    assert accepted.status_code == 202 and again.json()["id"] == accepted.json()["id"]
    assert slow_shop.available() == stock - 1


def test_a_queue_deeper_than_its_limit_refuses_new_orders(
    tmp_path: Path, inventory_url: str, redis_url: str
) -> None:
    limits = {"admission_max_wait_s": 0, "admission_max_depth": 3}
    with shop(tmp_path, inventory_url, redis_url, **limits) as deep:
        for _ in range(4):
            assert deep.client.post("/orders", json=ORDER).status_code == 202
        wait_for(lambda: deep.queued() == 4, timeout_s=10)
        deep.admission.refresh()
        refused = deep.client.post("/orders", json=ORDER)
        assert refused.status_code == 503 and "holds 4 orders" in refused.json()["detail"]


def test_a_retry_of_an_accepted_order_is_answered_even_while_refusing_new_ones(
    slow_shop: Shop,
) -> None:
    key = {"Idempotency-Key": "early-1"}
    placed = slow_shop.client.post("/orders", json=ORDER, headers=key)
    wait_for(lambda: slow_shop.queued() == 1, timeout_s=10)
    time.sleep(1.2)
    slow_shop.admission.refresh()
    assert slow_shop.admission.refusal() is not None
    replayed = slow_shop.client.post("/orders", json=ORDER, headers=key)
    assert replayed.status_code in (200, 202) and replayed.json()["id"] == placed.json()["id"]


def test_it_fails_open_while_the_broker_cannot_be_read(
    tmp_path: Path, inventory_url: str, unreachable_broker_url: str
) -> None:
    """The broker away: orders are accepted (the outbox holds them), never refused on a view
    it could not read."""
    with shop(tmp_path, inventory_url, unreachable_broker_url, admission_max_depth=1) as away:
        away.admission.refresh()
        assert away.admission.refusal() is None
        assert away.client.post("/orders", json=ORDER).status_code == 202
        assert away.client.post("/orders", json=ORDER).status_code == 202
