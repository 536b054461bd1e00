from __future__ import annotations

from fastapi import FastAPI

from flotilla.core.fastapi import service_app

from .._settings import ConsoleSettings
from .._store import SpanStore
from .routes import otlp, traces


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    """console: receives OTLP traces from every process and serves them back."""
    settings = settings or ConsoleSettings()
    store = SpanStore(
        settings.database_path,
        max_spans=settings.retention_max_spans,
        max_age_s=settings.retention_max_age_s,
    )

    def database() -> None:
        store.count()

    app = service_app(title="Flotilla console", checks={"span store": database})
    app.state.store = store
    app.state.max_request_bytes = settings.max_request_bytes
    app.include_router(otlp.router)
    app.include_router(traces.router)
    return app
