"""The console's FastAPI app: OTLP receiver, trace and pool API, web pages, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from flotilla.core.fastapi import service_app

from .. import web
from .._health import HealthBoard
from .._settings import ConsoleSettings
from .._store import SpanStore
from .routes import otlp, pools, services, traces


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
        max_logs=settings.retention_max_logs,
    )

    health = HealthBoard(
        {name: str(url) for name, url in settings.services.items()},
        platform_status=Path(settings.platform_status) if settings.platform_status else None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await health.close()
        store.close()

    app = service_app(
        title="Flotilla console", checks={"span store": store.ping}, lifespan=lifespan
    )
    app.state.store = store
    app.state.settings = settings
    app.state.health = health
    app.include_router(otlp.router)
    app.include_router(traces.router)
    app.include_router(pools.router)
    app.include_router(services.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    return app
