"""The FastAPI service ``bench/floor.py`` measures: one endpoint shaped like inventory-api's
reserve (validated body in, model out), in the variants the floor compares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import BaseModel

from bench._support import trace_to_encode_and_drop

#: the variants of the endpoint (``--serve``)
MODES = ("def", "async", "contrib-only", "native", "def-deps", "async-deps")


class Line(BaseModel):
    sku: str
    quantity: int


class Reservation(BaseModel):
    reference: str
    lines: list[Line]


def _plain_deps() -> list[Any]:
    """Six dependencies shaped like ``POST /orders``' (two sessions as generators; settings,
    a client, the admission check and the caller read from the app's state or a header), as
    ``def`` (FastAPI runs each on its thread pool: a generator twice) ..."""

    def state(request: Request) -> object:
        return request.app.state

    def session() -> Iterator[object]:
        yield object()

    def caller(x_client_id: Annotated[str, Header()] = "bench") -> str:
        return x_client_id

    return [Depends(session), Depends(session), Depends(state), Depends(state), Depends(state),
            Depends(caller)]  # fmt: skip


def _async_deps() -> list[Any]:
    """... and as ``async def`` (run on the event loop, no hop)."""

    async def state(request: Request) -> object:
        return request.app.state

    async def session() -> AsyncIterator[object]:
        yield object()

    async def caller(x_client_id: Annotated[str, Header()] = "bench") -> str:
        return x_client_id

    return [Depends(session), Depends(session), Depends(state), Depends(state), Depends(state),
            Depends(caller)]  # fmt: skip


def serve_reservations(mode: str, port: int) -> None:
    """Serve the endpoint as ``mode``: "def" and "async" as the services are (contrib's
    instrumentation; FastAPI's own telemetry left at its default, which then only checks for
    contrib's each request); "contrib-only": FastAPI's own switched off; "native": FastAPI's
    own OpenTelemetry support instead of contrib's; "def-deps" / "async-deps": with the six
    dependencies of ``POST /orders`` as ``def`` or as ``async def``."""
    from fastapi import FastAPI

    from flotilla.core import instrument_fastapi, serve

    trace_to_encode_and_drop("floor-api")
    off = {"tracing": False, "metrics": False, "logs": False}
    native = {"tracing": True, "operation_spans": False, "metrics": False, "logs": False}
    telemetry = {"contrib-only": off, "native": native}.get(mode)
    app = FastAPI(telemetry=telemetry)  # type: ignore[arg-type]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if mode in ("async", "async-deps"):
        deps = _async_deps() if mode == "async-deps" else []

        @app.post("/reservations", status_code=201, dependencies=deps)
        async def reserve_async(body: Reservation) -> Reservation:
            return body

    else:
        deps = _plain_deps() if mode == "def-deps" else []

        @app.post("/reservations", status_code=201, dependencies=deps)
        def reserve(body: Reservation) -> Reservation:
            return body

    if mode != "native":
        instrument_fastapi(app)
    serve(app, host="127.0.0.1", port=port)
