"""The outbox relay and the orders-worker against a real Redis broker and a real inventory."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dramatiq
import httpx
import pytest
from dramatiq import Worker
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import OrderConfirmation, broker_from_url, make_engine, session_factory
from flotilla.orders import (
    Fulfilment,
    InventoryClient,
    OrdersActors,
    create_app,
    declare_actors,
    migrate,
    publish_pending,
)
from tests.orders.conftest import orders_settings
from tests.support.waiting import wait_for

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-PADDLE", "quantity": 1}]}


@dataclass
class Platform:
    api: TestClient
    broker: dramatiq.Broker
    fulfilment: Fulfilment
    actors: OrdersActors
    inventory: httpx.Client
    confirmations: list[OrderConfirmation]

    def status(self, order_id: str) -> str:
        return str(self.api.get(f"/orders/{order_id}").json()["status"])


@pytest.fixture
def platform(database_url: str, inventory_url: str, redis_url: str) -> Iterator[Platform]:
    """orders-api with its relay, the worker's actors and a notifications stand-in actor.

    The notifications actor here only records what arrives on the ``notifications`` queue:
    notifications-worker has its own tests; this checks what orders sends it.
    """
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, redis_url)
    broker = broker_from_url(redis_url)
    engine = make_engine(database_url)
    inventory = InventoryClient(inventory_url)
    fulfilment = Fulfilment(
        sessions=session_factory(engine), inventory=inventory, broker=broker, payment_latency_ms=10
    )
    actors = declare_actors(broker, fulfilment, settings)
    confirmations: list[OrderConfirmation] = []

    @dramatiq.actor(broker=broker, queue_name="notifications", actor_name="send_order_confirmation")
    def record(payload: dict[str, object]) -> None:
        confirmations.append(OrderConfirmation.from_payload(payload))

    with (
        TestClient(create_app(settings, broker=broker)) as api,
        httpx.Client(base_url=inventory_url) as stock,
    ):
        yield Platform(api, broker, fulfilment, actors, stock, confirmations)
    inventory.close()
    engine.dispose()
    broker.close()


@pytest.fixture
def worker(platform: Platform) -> Iterator[Worker]:
    running = Worker(platform.broker, worker_threads=2)
    running.start()
    yield running
    running.stop()


def test_an_accepted_order_is_fulfilled_and_confirmed(platform: Platform, worker: Worker) -> None:
    before = platform.inventory.get("/products/FLT-PADDLE").json()
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    wait_for(lambda: len(platform.confirmations) == 1)
    assert str(platform.confirmations[0].order_id) == order["id"]
    assert platform.confirmations[0].customer_email == "ada@example.com"
    after = platform.inventory.get("/products/FLT-PADDLE").json()
    assert after["available"] == before["available"] - 1
    reservation = platform.inventory.post(f"/reservations/{order['reservation_id']}/release")
    assert reservation.status_code == 409  # committed: the units left the shelf


def test_fulfilling_twice_commits_and_confirms_once(platform: Platform) -> None:
    """Redelivery of a FulfilOrder (at-least-once brokers) changes nothing the second time."""
    order = platform.api.post("/orders", json=ORDER).json()
    order_id = uuid.UUID(order["id"])
    assert platform.fulfilment.fulfil(order_id) == "fulfilled"
    assert platform.fulfilment.fulfil(order_id) == "fulfilled"
    pending = platform.broker.client.llen(f"{platform.broker.namespace}:notifications")
    assert pending == 1


def test_a_cancelled_order_is_never_fulfilled(platform: Platform) -> None:
    order = platform.api.post("/orders", json=ORDER).json()
    assert platform.api.post(f"/orders/{order['id']}/cancel").json()["status"] == "cancelled"
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"])) == "cancelled"
    assert platform.status(order["id"]) == "cancelled"


def test_cancel_is_refused_once_fulfilled(platform: Platform, worker: Worker) -> None:
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    answer = platform.api.post(f"/orders/{order['id']}/cancel")
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"


def test_an_order_whose_retries_run_out_is_failed_and_its_stock_returned(
    platform: Platform, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = platform.inventory.get("/products/FLT-PADDLE").json()["available"]
    attempts = threading.Semaphore(0)

    def declined(order_id: str) -> None:
        attempts.release()
        raise RuntimeError("card declined")

    monkeypatch.setattr(platform.fulfilment, "charge_payment", declined)
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "failed", timeout_s=30)
    failed = platform.api.get(f"/orders/{order['id']}").json()
    assert "card declined" in failed["failure_reason"]
    assert platform.inventory.get("/products/FLT-PADDLE").json()["available"] == before
    assert platform.confirmations == []


def test_orders_accepted_while_the_broker_is_down_are_published_once_it_is_back(
    database_url: str, inventory_url: str, redis_url: str, unreachable_broker_url: str
) -> None:
    """The outbox keeps every accepted order until a broker takes it: nothing is lost."""
    migrate(database_url)
    down = orders_settings(database_url, inventory_url, unreachable_broker_url)
    with TestClient(create_app(down, relay=True)) as api:
        ids = [api.post("/orders", json=ORDER).json()["id"] for _ in range(3)]
        time.sleep(0.3)  # the relay tries, fails, keeps the rows
    engine = make_engine(database_url)
    broker = broker_from_url(redis_url)
    try:
        sessions = session_factory(engine)
        assert publish_pending(sessions=sessions, broker=broker) == 3
        assert publish_pending(sessions=sessions, broker=broker) == 0
        queued = broker.client.hvals(f"{broker.namespace}:orders.msgs")
        relayed = {json.loads(raw)["args"][0]["order_id"] for raw in queued}
        assert relayed == set(ids)
    finally:
        engine.dispose()
        broker.close()


def test_relayed_message_continues_the_trace_of_the_request(
    platform: Platform, spans: InMemorySpanExporter
) -> None:
    answer = platform.api.post("/orders", json=ORDER)
    order_id = answer.json()["id"]
    wait_for(lambda: any(s.name == "publish orders" for s in spans.get_finished_spans()))
    server = next(
        s
        for s in spans.get_finished_spans()
        if s.name == "POST /orders" and s.kind.name == "SERVER"
    )
    publish = next(s for s in spans.get_finished_spans() if s.name == "publish orders")
    assert publish.context.trace_id == server.context.trace_id
    assert publish.parent is not None
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == "orders"
    queued = platform.broker.client.hvals(f"{platform.broker.namespace}:orders.msgs")
    assert order_id in {json.loads(raw)["args"][0]["order_id"] for raw in queued}
