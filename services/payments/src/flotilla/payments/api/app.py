"""The payment stand-in's application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flotilla.core import make_engine, pool_size_for, read_only, schema_check, session_factory
from flotilla.core.fastapi import service_app

from .._faults import FaultInjector
from .._settings import PaymentsSettings
from ..models import Charge
from ..schemas import Faults
from .routes import charges, faults


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    """payments-api: a stand-in payment provider, real enough to count on.

    The database must already be migrated (``python -m flotilla.payments migrate``).

    Args:
        settings: the settings; read from the environment when omitted.
    """
    settings = settings or PaymentsSettings()
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size_for(settings.request_threads, serves_http=True),
        service="payments-api",
    )
    reader = read_only(engine)
    database = schema_check(engine, Charge.id)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = service_app(
        title="Flotilla payments (stand-in provider)",
        checks={"database": database},
        lifespan=lifespan,
        request_threads=settings.request_threads,
    )
    app.state.sessions = session_factory(engine)
    app.state.read_sessions = session_factory(reader)
    app.state.faults = FaultInjector(
        Faults(
            latency_ms=settings.latency_ms,
            failure_rate=settings.failure_rate,
            lost_reply_rate=settings.lost_reply_rate,
        )
    )
    app.include_router(charges.router)
    app.include_router(faults.router)
    return app
