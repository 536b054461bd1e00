"""The console's FastAPI app: OTLP receiver, trace API, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flotilla.core.fastapi import service_app

from .._settings import ConsoleSettings
from .._store import SpanStore
from .routes import otlp, traces


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    """The console app: receives OTLP traces from every process and serves them back.

    Args:
        settings: defaults to :class:`ConsoleSettings` read from the environment.
    """
    settings = settings or ConsoleSettings()
    store = SpanStore(
        settings.database_path,
        max_spans=settings.retention_max_spans,
        max_age_s=settings.retention_max_age_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = service_app(
        title="Flotilla console", checks={"span store": store.ping}, lifespan=lifespan
    )
    app.state.store = store
    app.state.settings = settings
    app.include_router(otlp.router)
    app.include_router(traces.router)
    return app
