"""orders-worker: a real dramatiq.Worker on a real Redis broker, fulfilling real orders."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dramatiq
import httpx
import pytest
from dramatiq import Worker
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import (
    FulfilOrder,
    OrderConfirmation,
    broker_from_url,
    make_engine,
    send_message,
    session_factory,
)
from flotilla.orders import (
    Fulfilment,
    InventoryClient,
    OrdersActors,
    create_app,
    declare_actors,
    migrate,
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

    def stock(self, sku: str = "FLT-PADDLE") -> int:
        return int(self.inventory.get(f"/products/{sku}").json()["available"])


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
    running = Worker(platform.broker, worker_threads=2, worker_timeout=100)
    running.start()
    yield running
    running.stop()


def test_an_accepted_order_is_fulfilled_and_confirmed_in_one_trace(
    platform: Platform, worker: Worker, spans: InMemorySpanExporter
) -> None:
    """POST /orders → publish orders → process orders → publish notifications, one trace."""
    before = platform.stock()
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    wait_for(lambda: len(platform.confirmations) == 1)
    assert str(platform.confirmations[0].order_id) == order["id"]
    assert platform.confirmations[0].customer_email == "ada@example.com"
    assert [(i.sku, i.quantity) for i in platform.confirmations[0].items] == [("FLT-PADDLE", 1)]
    assert platform.stock() == before - 1
    reservation = platform.inventory.post(f"/reservations/{order['reservation_id']}/release")
    assert reservation.status_code == 409  # committed: the units left the shelf

    finished = wait_for(
        lambda: (
            (f := spans.get_finished_spans())
            and any(s.name == "process notifications" for s in f)
            and f
        )
    )
    by_name = {s.name: s for s in finished}
    request = next(s for s in finished if s.name == "POST /orders" and s.kind.name == "SERVER")
    chain = [
        request,
        by_name["publish orders"],
        by_name["process orders"],
        by_name["publish notifications"],
    ]
    for parent, child in itertools.pairwise(chain):
        assert child.context.trace_id == request.context.trace_id
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    payment = by_name["payment.charge"]
    assert payment.parent is not None
    assert payment.parent.span_id == by_name["process orders"].context.span_id


def test_a_redelivered_fulfil_order_commits_and_confirms_once(
    platform: Platform, worker: Worker
) -> None:
    """At-least-once brokers may deliver FulfilOrder twice: the second delivery changes nothing."""
    before = platform.stock()
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    send_message(platform.broker, FulfilOrder(order_id=uuid.UUID(order["id"])))
    platform.broker.join(FulfilOrder.queue, timeout=20_000)
    platform.broker.join(OrderConfirmation.queue, timeout=20_000)
    worker.join()
    assert platform.stock() == before - 1
    assert [str(c.order_id) for c in platform.confirmations] == [order["id"]]


def test_a_cancelled_order_is_never_fulfilled(platform: Platform, worker: Worker) -> None:
    order = platform.api.post("/orders", json=ORDER).json()
    assert platform.api.post(f"/orders/{order['id']}/cancel").json()["status"] == "cancelled"
    send_message(platform.broker, FulfilOrder(order_id=uuid.UUID(order["id"])))
    platform.broker.join(FulfilOrder.queue, timeout=20_000)
    worker.join()
    assert platform.status(order["id"]) == "cancelled"
    assert platform.confirmations == []


def test_an_order_whose_stock_was_released_first_ends_cancelled(platform: Platform) -> None:
    """A cancel that released the stock but died before saving: the worker finishes the job."""
    order = platform.api.post("/orders", json=ORDER).json()
    released = platform.inventory.post(f"/reservations/{order['reservation_id']}/release")
    assert released.status_code == 200
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"])) == "cancelled"
    cancelled = platform.api.get(f"/orders/{order['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["failure_reason"] == "reservation released before fulfilment"


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
