"""The outbox relay of orders-api: no accepted order is lost, even while the broker is down."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.contracts import FulfilOrder
from flotilla.core import broker_from_url, make_engine, session_factory
from flotilla.orders import _orders as orders
from flotilla.orders import create_app, migrate, prune_history, redrive_stalled_orders
from tests.orders.conftest import Orders, orders_client, orders_settings, outbox_rows
from tests.support.redis_server import ThrowawayRedis
from tests.support.servers import silent_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-PADDLE", "quantity": 1}]}


def queued_order_ids(broker_url: str) -> list[str]:
    """The order ids of the FulfilOrder messages waiting on the ``orders`` queue."""
    broker = broker_from_url(broker_url)
    try:
        raw = broker.client.hvals(f"{broker.namespace}:orders.msgs")
        return sorted(json.loads(message)["args"][0]["order_id"] for message in raw)
    finally:
        broker.close()


def test_orders_accepted_while_the_broker_is_down_are_published_once_it_is_back(
    database_url: str,
    inventory_url: str,
    late_redis: ThrowawayRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given no broker, orders are still accepted; the relay keeps them and retries; when the
    broker starts, every one of them is published, exactly once; the outage is logged once."""
    caplog.set_level(logging.INFO, logger="flotilla.orders._outbox")
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, late_redis.url)
    with orders_client(create_app(settings)) as api:
        answers = [api.post("/orders", json=ORDER) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]
        # the relay has tried (and failed) several times: the rows are still there, unpublished
        wait_for(lambda: outbox_rows(database_url)[0]["attempts"] >= 3)
        assert all(row["published_at"] is None for row in outbox_rows(database_url))

        late_redis.start()
        wait_for(lambda: all(row["published_at"] for row in outbox_rows(database_url)))

    assert queued_order_ids(late_redis.url) == sorted(a.json()["id"] for a in answers)
    outage = [r for r in caplog.records if "broker unreachable" in r.getMessage()]
    assert len(outage) == 1
    assert any("resumed" in r.getMessage() for r in caplog.records)


def test_a_restarted_relay_publishes_what_an_earlier_process_left_behind(
    database_url: str, inventory_url: str, late_redis: ThrowawayRedis, unreachable_broker_url: str
) -> None:
    """orders-api stopped during an outage: the next orders-api process relays its orders."""
    migrate(database_url)
    down = orders_settings(database_url, inventory_url, unreachable_broker_url)
    with orders_client(create_app(down)) as api:
        placed = api.post("/orders", json=ORDER).json()["id"]
    assert outbox_rows(database_url)[0]["published_at"] is None

    late_redis.start()
    with orders_client(create_app(orders_settings(database_url, inventory_url, late_redis.url))):
        wait_for(lambda: outbox_rows(database_url)[0]["published_at"])
    assert queued_order_ids(late_redis.url) == [placed]


def test_the_relayed_message_continues_the_trace_of_the_order_request(
    database_url: str, inventory_url: str, redis_url: str, spans: InMemorySpanExporter
) -> None:
    """``publish orders`` is a child of ``POST /orders``, though a relay thread sent it later;
    the relay's own polling adds no traces of its own."""
    migrate(database_url)
    spans.clear()  # the migration is not what this test looks at
    with orders_client(create_app(orders_settings(database_url, inventory_url, redis_url))) as api:
        api.post("/orders", json=ORDER)
        publish = wait_for(
            lambda: next((s for s in spans.get_finished_spans() if s.name == "publish orders"), 0)
        )
        relay = api.app.state.relay  # type: ignore[attr-defined]
        rounds = relay.rounds
        wait_for(lambda: relay.rounds >= rounds + 3)  # idle rounds after the publication
    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name == "POST /orders" and s.kind.name == "SERVER")
    assert publish.kind.name == "PRODUCER"
    assert publish.context.trace_id == server.context.trace_id
    assert publish.parent is not None and publish.parent.span_id == server.context.span_id
    assert publish.attributes is not None
    assert publish.attributes["messaging.destination.name"] == "orders"
    strays = {s.name for s in finished if s.context.trace_id != server.context.trace_id}
    assert strays == set()


def test_an_accepted_order_whose_message_the_broker_lost_is_announced_again(
    database_url: str, inventory_url: str, redis_url: str, spans: InMemorySpanExporter
) -> None:
    """While the message waits in the queue (no worker), the redrive leaves it alone however
    long the order stays accepted; once the broker forgot it (a Redis restart without
    persistence), the relay sends FulfilOrder again, once."""
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, redis_url).model_copy(
        update={"redrive_after_ms": 300}
    )
    broker = broker_from_url(redis_url)
    try:
        with orders_client(create_app(settings)) as api:
            order = api.post("/orders", json=ORDER).json()
            wait_for(lambda: queued_order_ids(redis_url) == [order["id"]])
            relay = api.app.state.relay  # type: ignore[attr-defined]
            rounds = relay.rounds
            wait_for(lambda: relay.rounds > rounds + 10)  # > 1 s: several redrive checks
            assert queued_order_ids(redis_url) == [order["id"]]  # still one: it is held
            broker.flush(FulfilOrder.queue)
            assert queued_order_ids(redis_url) == []
            wait_for(lambda: queued_order_ids(redis_url) == [order["id"]])
            rounds = relay.rounds
            wait_for(lambda: relay.rounds > rounds + 10)
            assert queued_order_ids(redis_url) == [order["id"]]
            assert api.get(f"/orders/{order['id']}").json()["status"] == "accepted"
    finally:
        broker.close()
    assert len(outbox_rows(database_url)) == 2
    # the redrive continues the trace of the request that placed the order
    finished = spans.get_finished_spans()
    (placed,) = [s for s in finished if s.name == "POST /orders" and s.kind.name == "SERVER"]
    (redrive,) = [s for s in finished if s.name == "redrive order"]
    publishes = [s for s in finished if s.name == "publish orders"]
    assert len(publishes) == 2
    assert {s.context.trace_id for s in (redrive, *publishes)} == {placed.context.trace_id}
    assert redrive.parent is not None and redrive.parent.span_id == placed.context.span_id


def test_only_orders_still_accepted_are_announced_again(orders: Orders, database_url: str) -> None:
    accepted = orders.client.post("/orders", json=ORDER).json()["id"]
    cancelled = orders.client.post("/orders", json=ORDER).json()["id"]
    orders.client.post(f"/orders/{cancelled}/cancel")
    engine = make_engine(database_url)
    try:
        again = redrive_stalled_orders(
            sessions=session_factory(engine),
            broker=broker_from_url(orders.settings.broker_url),  # never asked: nothing published
            older_than_s=0,
        )
    finally:
        engine.dispose()
    assert again == [accepted]
    announced = [row["payload"] for row in outbox_rows(database_url)]
    ids = [(json.loads(p) if isinstance(p, str) else p)["order_id"] for p in announced]
    assert ids == [accepted, cancelled, accepted]


def test_a_hanging_broker_never_holds_up_an_order(database_url: str, inventory_url: str) -> None:
    """The broker accepts connections and never answers: orders are still accepted
    meanwhile, because their messages are published by the relay's publisher thread after the
    commit, not by the request, and the relay holds no transaction (on SQLite: no write lock)
    while it waits on the network."""
    migrate(database_url)
    with silent_server() as hung:
        settings = orders_settings(database_url, inventory_url, f"redis://127.0.0.1:{hung.port}/0")
        with orders_client(create_app(settings)) as api:
            first = api.post("/orders", json=ORDER)
            relay = api.app.state.relay  # type: ignore[attr-defined]
            wait_for(lambda: hung.received)  # the publisher is now waiting on the silent broker
            later = [api.post("/orders", json=ORDER) for _ in range(3)]
            still_stuck = relay.handled == 0
            rows = outbox_rows(database_url)
    assert [a.status_code for a in (first, *later)] == [202] * 4
    assert still_stuck, "the orders were only accepted once the publisher gave up"
    assert [row["published_at"] for row in rows] == [None] * 4


def test_an_orders_message_is_published_at_once_and_the_rows_are_marked_together(
    database_url: str, inventory_url: str, redis_url: str
) -> None:
    """The request hands its FulfilOrder to the publisher thread, which publishes it at once
    (the polling relay never claims the row: one attempt each); the rows are marked published
    many in one transaction (here all five, at the relay's stop: one ``published_at``)."""
    migrate(database_url)
    with orders_client(create_app(orders_settings(database_url, inventory_url, redis_url))) as api:
        relay = api.app.state.relay  # type: ignore[attr-defined]
        relay.MARK_EVERY_S = 3600.0  # NOTE: nothing is marked before the stop
        placed = sorted(api.post("/orders", json=ORDER).json()["id"] for _ in range(5))
        wait_for(lambda: queued_order_ids(redis_url) == placed)
        unmarked = outbox_rows(database_url)
    rows = outbox_rows(database_url)
    assert [row["published_at"] for row in unmarked] == [None] * 5
    assert len({row["published_at"] for row in rows}) == 1 and rows[0]["published_at"]
    assert [row["attempts"] for row in rows] == [1] * 5
    assert queued_order_ids(redis_url) == placed  # once each: the polling took none of them


def test_a_row_whose_writer_died_before_publishing_it_is_published_by_the_relay(
    database_url: str, inventory_url: str, redis_url: str
) -> None:
    """A writer committed its row, claimed for itself, and died before publishing it: once
    the claim runs out, the polling relay publishes it (a second attempt), once."""
    migrate(database_url)
    order_id = str(uuid.uuid4())
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            orders.create_order(
                session=session,
                order_id=order_id,
                client_id="key:shop",
                customer_email="ada@example.com",
                items=ORDER["items"],  # type: ignore[arg-type]
                reservation_id="r-1",
                amount_cents=100,
                announce=FulfilOrder(order_id=uuid.UUID(order_id)),
                idempotency_key=None,
                body_hash="-",
                writer_lease_s=0.5,
            )
    finally:
        engine.dispose()
    with orders_client(create_app(orders_settings(database_url, inventory_url, redis_url))):
        wait_for(lambda: outbox_rows(database_url)[0]["published_at"])
    assert [row["attempts"] for row in outbox_rows(database_url)] == [2]
    assert queued_order_ids(redis_url) == [order_id]


def test_published_rows_and_expired_keys_are_pruned_and_an_expired_key_is_new_again(
    orders: Orders, database_url: str
) -> None:
    """Published outbox rows and idempotency keys older than their retention are deleted;
    a request with an expired key places a new order (a day later, as at Stripe)."""
    first = orders.client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-old"})
    orders.client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-new"})
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE outbox SET published_at = :at WHERE id = (SELECT MIN(id) FROM outbox)"
                ),
                {"at": datetime.now(UTC) - timedelta(days=2)},
            )
            connection.execute(
                sa.text("UPDATE idempotency_keys SET created_at = :at WHERE key = 'k-old'"),
                {"at": datetime.now(UTC) - timedelta(days=2)},
            )
        replay_before_pruning = orders.client.post(
            "/orders", json=ORDER, headers={"Idempotency-Key": "k-old"}
        )
        rows, keys = prune_history(
            sessions=session_factory(engine), outbox_retention_s=86_400, key_ttl_s=86_400
        )
    finally:
        engine.dispose()
    assert (rows, keys) == (1, 0)  # k-old was reused, so it is a fresh key now
    assert replay_before_pruning.status_code == 202
    assert replay_before_pruning.json()["id"] != first.json()["id"]
    assert len(outbox_rows(database_url)) == 2
