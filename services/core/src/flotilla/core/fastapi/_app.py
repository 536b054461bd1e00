from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from flotilla.core._health import Check, run_checks
from flotilla.core._problems import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    FieldError,
    Problem,
    ProblemError,
    field_path,
)
from flotilla.core._telemetry import current_trace_id, instrument_fastapi

from ._contract import problem_openapi

if TYPE_CHECKING:  # NOTE: the database extra; the console serves FastAPI without one
    from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON response carrying ``problem`` as ``application/problem+json``."""
    return JSONResponse(
        problem.to_dict(),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _validation_problem(request: Request, exc: RequestValidationError) -> Problem:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(
            type=PROBLEM_TYPE_BASE + "malformed-json",
            title="Malformed JSON",
            status=400,
            detail="The request body is not valid JSON.",
            instance=request.url.path,
            errors=[FieldError(field="body", message="not valid JSON")],
        )
    return Problem(
        type=PROBLEM_TYPE_BASE + "validation",
        title="Invalid request",
        status=422,
        detail="; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors)[:500],
        instance=request.url.path,
        errors=[FieldError(field=field_path(e["loc"]), message=e["msg"]) for e in errors],
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with an RFC 9457 problem, never a traceback."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        problem = exc.problem.model_copy(update={"instance": request.url.path})
        return problem_response(problem, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_problem(request, exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        problem = Problem(
            title=str(exc.detail) if exc.status_code != 404 else "Not found",
            status=exc.status_code,
            detail=str(exc.detail),
            instance=request.url.path,
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(app, request)
        return problem_response(problem, headers)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        trace_id = current_trace_id()
        problem = Problem(
            title="Internal error",
            status=500,
            detail="The service failed to handle the request; it has been logged"
            + (f" under trace {trace_id}." if trace_id else "."),
            instance=request.url.path,
        )
        return problem_response(problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method some route serves at the request's path (Starlette's 405 names only the
    first route whose path matched, though ``GET`` and ``POST /orders`` are two routes)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def health_router(
    checks: Mapping[str, Check] | None = None, informational: Mapping[str, Check] | None = None
) -> APIRouter:
    """``GET /healthz`` (alive) and ``GET /readyz`` (every required check passes, else 503;
    informational checks are only reported)."""
    router = APIRouter(tags=["health"])
    all_checks, reported = dict(checks or {}), dict(informational or {})

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        report = await run_checks(all_checks, informational=reported)
        return JSONResponse(report.to_dict(), status_code=200 if report.ready else 503)

    return router


def _with_request_threads(lifespan: Any, threads: int) -> Any:
    """``lifespan``, after it has set the threads that run sync endpoints and dependencies
    (anyio's default limiter is per event loop: it can only be set once the loop runs)."""

    @asynccontextmanager
    async def threaded(app: FastAPI) -> AsyncIterator[Any]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if lifespan is None:
            yield None
            return
        async with lifespan(app) as state:
            yield state

    return threaded


def service_app(
    *,
    title: str,
    checks: Mapping[str, Check] | None = None,
    informational: Mapping[str, Check] | None = None,
    request_threads: int | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with problem answers, health routes and OpenTelemetry instrumentation.

    Args:
        title: the OpenAPI title.
        checks: the readiness checks behind ``/readyz``: what the service needs to do its job.
        informational: dependencies ``/readyz`` reports without depending on them.
        request_threads: the threads that run sync endpoints and dependencies (anyio's
            default is 40): at most that many requests hold a database connection at once.
        **fastapi_options: passed to :class:`fastapi.FastAPI` (``lifespan``…).
    """
    if request_threads is not None:
        fastapi_options["lifespan"] = _with_request_threads(
            fastapi_options.get("lifespan"), request_threads
        )
    app = FastAPI(title=title, **fastapi_options)
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]  # FastAPI's documented way
    install_problem_handlers(app)
    app.include_router(health_router(checks, informational))
    instrument_fastapi(app)
    return app


#: threads that roll back what a request left open (their own, so a rollback never waits
#: for a request thread while the request threads wait for its connection)
_CLOSERS: RunVar[anyio.CapacityLimiter] = RunVar("flotilla_session_closers")


def _closers() -> anyio.CapacityLimiter:
    try:
        return _CLOSERS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(4)
        _CLOSERS.set(limiter)
        return limiter


@asynccontextmanager
async def _request_session(factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    """A session for one request, made and closed on the event loop: making one does no I/O
    (it connects at its first statement), nor does closing one whose transaction the
    endpoint ended. Only a transaction left open is rolled back on a thread. So a request's
    sessions cost no thread-pool hops (a ``def`` dependency costs two: ``bench/floor.py``)."""
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(session.close, limiter=_closers())
        else:
            session.close()


async def db_session(request: Request) -> AsyncIterator[Session]:
    """A session from ``app.state.sessions`` for one request (writes allowed)."""
    async with _request_session(request.app.state.sessions) as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[Session]:
    """A session from ``app.state.read_sessions`` for one request that only reads."""
    async with _request_session(request.app.state.read_sessions) as session:
        yield session
