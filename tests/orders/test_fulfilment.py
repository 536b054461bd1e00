"""orders-worker: a real dramatiq.Worker on a real Redis broker, fulfilling real orders.

Inventory and the payment provider are the platform's own, served over HTTP; charges are
counted from the provider's books, faults injected through its ``/faults`` (what a person
would do to watch retries).
"""

from __future__ import annotations

import itertools
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

from flotilla.contracts import FulfilOrder, OrderConfirmation
from flotilla.core import (
    ATTEMPT_ATTRIBUTE,
    broker_from_url,
    make_engine,
    send_message,
    session_factory,
)
from flotilla.inventory import InventorySettings
from flotilla.inventory import create_app as create_inventory
from flotilla.inventory import migrate as migrate_inventory
from flotilla.orders import (
    Fulfilment,
    HttpPaymentProvider,
    InventoryClient,
    OrdersActors,
    OutboxRelay,
    PaymentUnavailable,
    create_app,
    declare_actors,
    migrate,
)
from flotilla.orders._orders import claim
from tests.orders.conftest import orders_client, orders_settings
from tests.support.servers import serve_in_thread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-PADDLE", "quantity": 1}]}


@dataclass
class Platform:
    api: TestClient
    broker: dramatiq.Broker
    fulfilment: Fulfilment
    actors: OrdersActors
    inventory: httpx.Client
    payments: httpx.Client
    confirmations: list[OrderConfirmation]
    sessions: object

    def status(self, order_id: str) -> str:
        return str(self.api.get(f"/orders/{order_id}").json()["status"])

    def stock(self, sku: str = "FLT-PADDLE") -> int:
        return int(self.inventory.get(f"/products/{sku}").json()["available"])

    def charges(self) -> dict[str, int]:
        counts: dict[str, int] = self.payments.get("/charges/summary").json()
        return counts

    def faults(self, **faults: object) -> None:
        assert self.payments.put("/faults", json=faults).status_code == 200


def make_platform(
    database_url: str, inventory_url: str, redis_url: str, payments_url: str
) -> Iterator[Platform]:
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, redis_url, payments_url)
    broker = broker_from_url(redis_url)
    engine = make_engine(database_url)
    inventory = InventoryClient(inventory_url)
    provider = HttpPaymentProvider(payments_url)
    sessions = session_factory(engine)
    # NOTE: the worker's relay: it marks the confirmations the actors publish
    relay = OutboxRelay(sessions=sessions, broker=broker, interval_s=0.2)
    relay.start()
    fulfilment = Fulfilment(
        sessions=sessions, inventory=inventory, payments=provider, relay=relay, claim_lease_s=1.0
    )
    actors = declare_actors(broker, fulfilment, settings)
    confirmations: list[OrderConfirmation] = []

    @dramatiq.actor(broker=broker, queue_name="notifications", actor_name="send_order_confirmation")
    def record(payload: dict[str, object]) -> None:
        confirmations.append(OrderConfirmation.from_payload(payload))

    with (
        orders_client(create_app(settings, broker=broker)) as api,
        httpx.Client(base_url=inventory_url) as stock,
        httpx.Client(base_url=payments_url) as payments,
    ):
        yield Platform(api, broker, fulfilment, actors, stock, payments, confirmations, sessions)
    relay.stop()
    inventory.close()
    provider.close()
    engine.dispose()
    broker.close()


@pytest.fixture
def platform(
    database_url: str, inventory_url: str, redis_url: str, payments_url: str
) -> Iterator[Platform]:
    """orders-api with its relay, the worker's actors and a notifications stand-in actor.

    The notifications actor here only records what arrives on the ``notifications`` queue:
    notifications-worker has its own tests; this checks what orders sends it.
    """
    yield from make_platform(database_url, inventory_url, redis_url, payments_url)


@pytest.fixture
def worker(platform: Platform) -> Iterator[Worker]:
    running = Worker(platform.broker, worker_threads=2, worker_timeout=100)
    running.start()
    yield running
    running.stop()


def test_an_accepted_order_is_fulfilled_charged_once_and_confirmed_in_one_trace(
    platform: Platform, worker: Worker, spans: InMemorySpanExporter
) -> None:
    """POST /orders → publish orders → process orders → publish notifications, one trace;
    the charge (for what the items cost) is in it, under the fulfilment."""
    before = platform.stock()
    order = platform.api.post("/orders", json=ORDER).json()
    assert order["amount_cents"] == 14_900
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    wait_for(lambda: len(platform.confirmations) == 1)
    assert str(platform.confirmations[0].order_id) == order["id"]
    assert platform.confirmations[0].customer_email == "ada@example.com"
    assert [(i.sku, i.quantity) for i in platform.confirmations[0].items] == [("FLT-PADDLE", 1)]
    assert platform.stock() == before - 1
    reservation = platform.inventory.post(f"/reservations/{order['reservation_id']}/release")
    assert reservation.status_code == 409  # committed: the units left the shelf
    (charge,) = platform.payments.get("/charges", params={"order_id": order["id"]}).json()["items"]
    assert charge["amount_cents"] == 14_900
    assert platform.api.get(f"/orders/{order['id']}").json()["payment_id"] == charge["id"]

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
    charged = dict(by_name["process orders"].attributes or {})
    assert charged["payments.idempotency_key"] == f"order-{order['id']}"
    assert charged["payments.charge.id"] == charge["id"]
    assert charged["payments.replayed"] is False
    charge_call = next(
        s
        for s in finished
        if s.kind.name == "CLIENT"
        and str((s.attributes or {}).get("url.full")).endswith("/charges")
    )
    assert charge_call.parent is not None
    assert charge_call.parent.span_id == by_name["process orders"].context.span_id
    # one span per hop: the Redis commands of the publishes fold into their PRODUCER spans
    redis_spans = [
        s.name
        for s in finished
        if s.context.trace_id == request.context.trace_id
        and "redis" in {(s.attributes or {}).get(k) for k in ("db.system", "db.system.name")}
    ]
    assert redis_spans == []
    provider = next(s for s in finished if s.name == "POST /charges" and s.kind.name == "SERVER")
    assert provider.context.trace_id == request.context.trace_id  # the provider's side, too


def test_a_redelivered_fulfil_order_charges_commits_and_confirms_once(
    platform: Platform, worker: Worker
) -> None:
    """At-least-once brokers may deliver FulfilOrder twice: the second delivery changes nothing."""
    before = platform.stock()
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    for _ in range(3):
        send_message(platform.broker, FulfilOrder(order_id=uuid.UUID(order["id"])))
    platform.broker.join(FulfilOrder.queue, timeout=20_000)
    platform.broker.join(OrderConfirmation.queue, timeout=20_000)
    worker.join()
    assert platform.stock() == before - 1
    assert [str(c.order_id) for c in platform.confirmations] == [order["id"]]
    assert platform.charges()["charges"] == 1


def test_a_message_that_fails_twice_is_one_trace_with_three_numbered_attempts(
    platform: Platform, worker: Worker, spans: InMemorySpanExporter
) -> None:
    """The provider refuses twice (injected): the order is fulfilled on the third attempt,
    charged once, and its trace holds three ``process orders`` spans numbered 1, 2, 3."""
    platform.faults(fail_next=2)
    order = platform.api.post("/orders", json=ORDER)
    trace_id = next(
        s.context.trace_id for s in spans.get_finished_spans() if s.name == "POST /orders"
    )
    wait_for(lambda: platform.status(order.json()["id"]) == "fulfilled", timeout_s=30)
    attempts = wait_for(
        lambda: (
            len(a := [s for s in spans.get_finished_spans() if s.name == "process orders"]) == 3
            and a
        )
    )
    assert {s.context.trace_id for s in attempts} == {trace_id}
    numbers = sorted(s.attributes[ATTEMPT_ATTRIBUTE] for s in attempts)  # type: ignore[index]
    assert numbers == [1, 2, 3]
    assert platform.charges()["charges"] == 1


def test_a_charge_whose_reply_was_lost_is_not_made_again_when_the_attempt_resumes(
    platform: Platform,
) -> None:
    """The provider charged and the reply never came (injected): the next attempt asks with
    the same key and gets that charge back; the customer pays once."""
    order = platform.api.post("/orders", json=ORDER).json()
    platform.faults(lost_reply_rate=1.0)
    with pytest.raises(PaymentUnavailable):
        platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="m-1")
    assert platform.status(order["id"]) == "fulfilling"
    platform.faults()
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="m-1") == "fulfilled"
    counts = platform.charges()
    assert (counts["charges"], counts["replays"]) == (1, 1)


def test_a_duplicate_leaves_an_order_another_attempt_holds_until_its_claim_expires(
    platform: Platform,
) -> None:
    """A worker claimed the order and died (SIGKILL: nothing released the claim). A second
    delivery does nothing while the claim lasts, then takes the order over and fulfils it."""
    order = platform.api.post("/orders", json=ORDER).json()
    with platform.sessions.begin() as session:  # type: ignore[attr-defined]
        assert claim(session=session, order_id=order["id"], attempt="dead", lease_s=1.0)
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="dup") == "fulfilling"
    assert platform.charges()["charges"] == 0
    cancel = platform.api.post(f"/orders/{order['id']}/cancel")
    assert cancel.status_code == 409  # being fulfilled: not cancellable any more
    time.sleep(1.1)
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="dup") == "fulfilled"
    assert platform.charges()["charges"] == 1


def test_a_cancelled_order_is_never_fulfilled_nor_charged(platform: Platform) -> None:
    """The relay's message and a duplicate both arrive after the cancel (the worker starts
    only then, so no claim can win the race): neither fulfils nor charges."""
    order = platform.api.post("/orders", json=ORDER).json()
    assert platform.api.post(f"/orders/{order['id']}/cancel").json()["status"] == "cancelled"
    send_message(platform.broker, FulfilOrder(order_id=uuid.UUID(order["id"])))
    worker = Worker(platform.broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        platform.broker.join(FulfilOrder.queue, timeout=20_000)
        worker.join()
    finally:
        worker.stop()
    assert platform.status(order["id"]) == "cancelled"
    assert platform.confirmations == []
    assert platform.charges()["charges"] == 0


def test_a_hold_with_time_to_spare_is_not_renewed_and_one_that_may_lapse_is(
    platform: Platform, spans: InMemorySpanExporter
) -> None:
    """The worker renews the reservation only when it could lapse before the charge and the
    commit (it ends within the claim's lease): most orders go without that HTTP hop."""
    first = platform.api.post("/orders", json=ORDER).json()
    spans.clear()
    assert platform.fulfilment.fulfil(uuid.UUID(first["id"]), attempt="a") == "fulfilled"
    paths = [str((s.attributes or {}).get("url.full", "")) for s in spans.get_finished_spans()]
    assert not [p for p in paths if p.endswith("/renew")]
    assert any(p.endswith("/commit") for p in paths)
    # an order whose hold ends sooner than the claim's lease (a long queue): renewed first
    second = platform.api.post("/orders", json=ORDER).json()
    platform.fulfilment.claim_lease_s = 10_000.0
    spans.clear()
    assert platform.fulfilment.fulfil(uuid.UUID(second["id"]), attempt="b") == "fulfilled"
    paths = [str((s.attributes or {}).get("url.full", "")) for s in spans.get_finished_spans()]
    assert [p for p in paths if p.endswith("/renew")]


def test_an_order_whose_hold_was_released_fails_and_its_charge_is_refunded(
    platform: Platform,
) -> None:
    """The reservation was given back before any worker came (by hand, say). The worker does
    not ask inventory before it charges while the hold has time left (a renew per order cost
    an HTTP hop), so it finds out at the commit: the order fails and the charge is refunded."""
    before = platform.stock()
    order = platform.api.post("/orders", json=ORDER).json()
    released = platform.inventory.post(f"/reservations/{order['reservation_id']}/release")
    assert released.status_code == 200
    assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="m") == "failed"
    failed = platform.api.get(f"/orders/{order['id']}").json()
    assert failed["failure_reason"] == (
        "the reservation was released before its commit; 1 charge(s) refunded"
    )
    ledger = platform.charges()
    assert (ledger["charges"], ledger["refunds"]) == (1, 1)
    assert platform.stock() == before


def test_an_order_whose_hold_lapsed_in_a_long_queue_is_still_fulfilled(
    database_url: str, redis_url: str, payments_url: str, tmp_path: object
) -> None:
    """Reservations hold 0.3 s and the order waits longer (a long queue, a broker outage):
    the worker renews the hold (the units are still there) and fulfils the order."""
    url = f"sqlite:///{tmp_path}/lapsing-inventory.db"
    migrate_inventory(url)
    settings = InventorySettings(database_url=url, reservation_ttl_s=0.3, sweep_interval_s=0.1)
    with serve_in_thread(create_inventory(settings)) as inventory_url:
        for platform in make_platform(database_url, inventory_url, redis_url, payments_url):
            before = platform.stock()
            order = platform.api.post("/orders", json=ORDER).json()
            wait_for(lambda p=platform, b=before: p.stock() == b)  # the hold lapsed, swept
            assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="m") == "fulfilled"
            assert platform.stock() == before - 1
            assert platform.charges()["charges"] == 1


def test_a_hold_that_expires_while_the_provider_is_slow_is_refunded(
    database_url: str, redis_url: str, payments_url: str, tmp_path: object
) -> None:
    """Reservations hold 1 s, the provider takes 1.5 s: the commit comes too late, so the
    charge is refunded, the order fails, and the units are back on the shelf."""
    url = f"sqlite:///{tmp_path}/short-inventory.db"
    migrate_inventory(url)
    settings = InventorySettings(database_url=url, reservation_ttl_s=1.0, sweep_interval_s=0)
    with serve_in_thread(create_inventory(settings)) as inventory_url:
        for platform in make_platform(database_url, inventory_url, redis_url, payments_url):
            before = platform.stock()
            order = platform.api.post("/orders", json=ORDER).json()
            platform.faults(latency_ms=1_500)
            assert platform.fulfilment.fulfil(uuid.UUID(order["id"]), attempt="m") == "failed"
            failed = platform.api.get(f"/orders/{order['id']}").json()
            assert "expired before its commit" in failed["failure_reason"]
            assert failed["failure_reason"].endswith("1 charge(s) refunded")
            counts = platform.charges()
            assert (counts["charges"], counts["refunds"]) == (1, 1)
            assert platform.stock() == before


def test_an_order_whose_retries_run_out_is_failed_and_its_stock_returned(
    platform: Platform, worker: Worker
) -> None:
    """The provider is down for good: every attempt fails, then the order is failed, its
    stock given back, nothing charged."""
    before = platform.stock()
    platform.faults(fail_next=1_000)
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "failed", timeout_s=30)
    failed = platform.api.get(f"/orders/{order['id']}").json()
    assert "gave up after 6 attempts" in failed["failure_reason"]
    assert "payments answered 503" in failed["failure_reason"]
    assert platform.stock() == before
    assert platform.confirmations == []
    assert platform.charges()["charges"] == 0


def test_giving_up_after_a_commit_that_went_through_fulfils_the_order(
    platform: Platform,
) -> None:
    """The last attempt's commit reached inventory but its answer never came back: when the
    handler gives up, the units are already the customer's, so the order is fulfilled
    (charged once) rather than failed."""
    order = platform.api.post("/orders", json=ORDER).json()
    committed = platform.inventory.post(f"/reservations/{order['reservation_id']}/commit")
    assert committed.status_code == 200
    status = platform.fulfilment.fail(uuid.UUID(order["id"]), "gave up", attempt="m")
    assert status == "fulfilled"
    assert platform.charges()["charges"] == 1


def test_cancel_is_refused_once_fulfilled(platform: Platform, worker: Worker) -> None:
    order = platform.api.post("/orders", json=ORDER).json()
    wait_for(lambda: platform.status(order["id"]) == "fulfilled")
    answer = platform.api.post(f"/orders/{order['id']}/cancel")
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
