"""orders-worker: the ``fulfil_order`` actor in one process, drained on SIGTERM."""

from __future__ import annotations

import dramatiq

from flotilla.contracts.catalogue import component
from flotilla.core import (
    broker_from_url,
    make_engine,
    pool_size_for,
    run_worker,
    session_factory,
)

from ._fulfilment import Fulfilment
from ._inventory import InventoryClient
from ._outbox import OutboxRelay
from ._payments import HttpPaymentProvider
from ._settings import OrdersSettings
from .actors import declare_actors


def run(settings: OrdersSettings) -> None:
    """orders-worker: consume ``orders`` until SIGTERM, then drain."""
    broker = broker_from_url(settings.broker_url)
    # NOTE: global too, so anything that sends through Dramatiq's default broker uses this one.
    dramatiq.set_broker(broker)
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size_for(settings.worker_threads, serves_http=False),
        service="orders-worker",
    )
    sessions = session_factory(engine)
    inventory = InventoryClient(settings.inventory_url, timeout_s=settings.inventory_timeout_s)
    payments = HttpPaymentProvider(settings.payments_url, timeout_s=settings.payments_timeout_s)
    # NOTE: the worker relays too, so a confirmation left behind by a broker blip goes out
    # even when no orders-api runs; it also marks the confirmations the actors publish.
    relay = OutboxRelay(
        sessions=sessions,
        broker=broker,
        interval_s=max(settings.relay_interval_ms / 1000, 1.0),
        outage_interval_s=settings.relay_outage_interval_ms / 1000,
    )
    fulfilment = Fulfilment(
        sessions=sessions,
        inventory=inventory,
        payments=payments,
        relay=relay,
        claim_lease_s=settings.claim_lease_s,
    )
    declare_actors(broker, fulfilment, settings)
    relay.start()
    try:
        # NOTE: the queues the catalogue says it consumes (its pool is scaled on them)
        consumes = list(component("orders-worker").consumes)
        run_worker(broker, queues=consumes, threads=settings.worker_threads)
    finally:
        relay.stop()
        inventory.close()
        payments.close()
        engine.dispose()
