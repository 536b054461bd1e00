from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import dramatiq
from fastapi import FastAPI

from flotilla.contracts import FulfilOrder
from flotilla.core import (
    broker_from_url,
    instrument_redis,
    make_engine,
    pool_size_for,
    read_only,
    session_factory,
)
from flotilla.core.fastapi import service_app

from .._admission import Admission
from .._inventory import InventoryClient
from .._outbox import Housekeeping, OutboxRelay
from .._readiness import broker_reachable, database_reachable
from .._settings import OrdersSettings
from .routes import orders


def create_app(
    settings: OrdersSettings | None = None,
    *,
    broker: dramatiq.Broker | None = None,
    relay: bool = True,
) -> FastAPI:
    """orders-api: accepts orders, stores them with an outbox, relays the outbox to the broker.

    Args:
        settings: the settings (read from the environment when omitted).
        broker: the broker to relay to (built from ``settings.broker_url`` when omitted).
        relay: run the outbox relay thread in this process.
    """
    settings = settings or OrdersSettings()
    # NOTE: only here, not in orders-worker, where Dramatiq's polling would make a root span
    # per Redis call; in orders-api Redis calls happen inside a publish span.
    instrument_redis()
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size_for(settings.request_threads, serves_http=True),
        service="orders-api",
    )
    sessions = session_factory(engine)
    broker = broker or broker_from_url(settings.broker_url)
    outbox = (
        OutboxRelay(
            sessions=sessions,
            broker=broker,
            interval_s=settings.relay_interval_ms / 1000,
            outage_interval_s=settings.relay_outage_interval_ms / 1000,
            batch=settings.relay_batch_size,
            housekeeping=Housekeeping(
                redrive_after_s=settings.redrive_after_ms / 1000 or None,
                prune_every_s=settings.prune_interval_s,
                outbox_retention_s=settings.outbox_retention_s,
                idempotency_key_ttl_s=settings.idempotency_key_ttl_s,
            ),
        )
        if relay
        else None
    )
    inventory = InventoryClient(settings.inventory_url, timeout_s=settings.inventory_timeout_s)
    admission = Admission(
        broker,
        queue=FulfilOrder.queue,
        max_wait_s=settings.admission_max_wait_s,
        max_depth=settings.admission_max_depth,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if outbox is not None:
            outbox.start()
        admission.start()
        yield
        admission.stop()
        if outbox is not None:
            outbox.stop()
        inventory.close()
        engine.dispose()

    app = service_app(
        title="Flotilla orders",
        lifespan=lifespan,
        # NOTE: the broker is reported, not required: while it is down orders are still
        # accepted, and the outbox publishes them once it is back.
        checks={"database": partial(database_reachable, engine)},
        informational={"broker": partial(broker_reachable, broker)},
        request_threads=settings.request_threads,
    )
    app.state.sessions = sessions
    app.state.read_sessions = session_factory(read_only(engine))
    app.state.inventory = inventory
    app.state.relay = outbox
    app.state.admission = admission
    app.state.settings = settings
    app.include_router(orders.router)
    return app
