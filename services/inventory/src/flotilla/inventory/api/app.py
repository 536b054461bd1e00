from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI

from flotilla.core import make_engine, read_only, session_factory
from flotilla.core.fastapi import service_app

from .._settings import InventorySettings
from .routes import products, reservations


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    """inventory-api: products and reservations over HTTP."""
    settings = settings or InventorySettings()
    engine = make_engine(settings.database_url)

    def database() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = service_app(title="Flotilla inventory", checks={"database": database}, lifespan=lifespan)
    app.state.sessions = session_factory(engine)
    app.state.read_sessions = session_factory(read_only(engine))
    app.include_router(products.router)
    app.include_router(reservations.router)
    return app
