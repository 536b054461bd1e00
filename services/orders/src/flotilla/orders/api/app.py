from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq
import sqlalchemy as sa
from fastapi import FastAPI

from flotilla.core import broker_from_url, make_engine, read_only, session_factory
from flotilla.core.fastapi import service_app

from .._inventory import InventoryClient
from .._outbox import OutboxRelay
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
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    broker = broker or broker_from_url(settings.broker_url)
    outbox = (
        OutboxRelay(
            sessions=sessions,
            broker=broker,
            interval_s=settings.relay_interval_ms / 1000,
            batch=settings.relay_batch_size,
        )
        if relay
        else None
    )
    inventory = InventoryClient(settings.inventory_url, timeout_s=settings.inventory_timeout_s)

    def database() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def broker_check() -> None:
        client = getattr(broker, "client", None)
        if client is not None:
            client.ping()
        else:
            broker.declare_queue("orders")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if outbox is not None:
            outbox.start()
        yield
        if outbox is not None:
            outbox.stop()
        inventory.close()
        engine.dispose()

    app = service_app(
        title="Flotilla orders",
        lifespan=lifespan,
        checks={"database": database, "broker": broker_check},
    )
    app.state.sessions = sessions
    app.state.read_sessions = session_factory(read_only(engine))
    app.state.inventory = inventory
    app.state.relay = outbox
    app.include_router(orders.router)
    return app
