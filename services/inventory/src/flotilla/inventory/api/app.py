"""The inventory-api application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flotilla.core import make_engine, pool_size_for, read_only, schema_check, session_factory
from flotilla.core.fastapi import service_app

from .._settings import InventorySettings
from .._sweeper import ReservationSweeper
from ..models import Product
from .routes import products, reservations


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    """inventory-api: products and reservations over HTTP.

    The database must already be migrated (``python -m flotilla.inventory migrate``);
    ``/readyz`` answers 503 while it cannot be queried.

    Args:
        settings: the settings; read from the environment when omitted.
    """
    settings = settings or InventorySettings()
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size_for(settings.request_threads, serves_http=True),
        service="inventory-api",
    )

    reader = read_only(engine)
    database = schema_check(engine, Product.sku)

    sessions = session_factory(engine)
    sweeper = ReservationSweeper(sessions, interval_s=settings.sweep_interval_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper.start()
        yield
        sweeper.stop()
        engine.dispose()

    app = service_app(
        title="Flotilla inventory",
        checks={"database": database},
        lifespan=lifespan,
        request_threads=settings.request_threads,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.sweeper = sweeper
    app.state.read_sessions = session_factory(reader)
    app.include_router(products.router)
    app.include_router(reservations.router)
    return app
