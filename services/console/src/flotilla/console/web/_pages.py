"""HTML routes: ``/`` (recent traces), ``/traces/{id}`` (waterfall and logs), ``/pools``,
``/services`` (rate, errors, latency per route and queue), and the
fragments the pages refresh themselves with. Server-rendered (Jinja2), so every page reads
without JavaScript; ``static/console.js`` only adds live updates and the in-page detail panel.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from .._decisions import PoolView
from .._deps import Settings, Store, performance
from .._health import HealthBoard
from .._otlp_logs import LEVELS
from .._performance import WINDOWS_MIN
from .._settings import ConsoleSettings
from .._store import SpanStore
from .._summary import TraceOutline
from ..schemas import TRACE_ID
from . import _waterfall
from ._chart import chart

HERE = Path(__file__).parent
POOL_WINDOW_S = 15 * 60
_HEX = re.compile(r"^[0-9a-fA-F]{1,32}$")
#: Fixed colours for the platform's own services (distinct, readable on white); others hash.
COLOURS = {
    "edge": "#0a58ca",
    "orders-api": "#1a7f37",
    "inventory-api": "#8250df",
    "orders-worker": "#bc4c00",
    "notifications-worker": "#bf3989",
    "console": "#57606a",
    "autoscaler": "#116329",
    "operator": "#953800",
}
PALETTE = ("#0550ae", "#6639ba", "#9a6700", "#0e7490", "#a40e26", "#4d2d00", "#1f6feb")

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def colour(service: str) -> str:
    if service in COLOURS:
        return COLOURS[service]
    digest = hashlib.sha256(service.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%H:%M:%S")


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} µs"


def _chart(pool: PoolView) -> Markup:
    """The chart spans the pool's data in the window, but at least the last two minutes."""
    now = time.time_ns()
    first = pool.series[0].time if pool.series else now
    since = max(now - POOL_WINDOW_S * 1_000_000_000, min(first, now - 120 * 1_000_000_000))
    return chart(pool, since_ns=since, now_ns=now)


def _query(fields: dict[str, str | None]) -> str:
    """A query string of the fields that differ from their defaults (all levels: no level)."""
    defaults = {"level": LEVELS[0]}
    return urlencode({k: v for k, v in fields.items() if v and v != defaults.get(k)})


templates.env.filters.update(
    iso=_iso, clock=_clock, ms=_ms, colour=colour, chart=_chart, query=_query
)


@dataclass(frozen=True)
class TraceQuery:
    """The search form, checked: a bad field is named in ``problems`` and left out."""

    trace_id: str | None = None
    service: str | None = None
    operation: str | None = None
    min_ms: float | None = None
    errors: bool = False
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, trace_id: str, service: str, operation: str, min_ms: str, errors: str
    ) -> TraceQuery:
        problems = []
        if trace_id.strip() and not _HEX.match(trace_id.strip()):
            problems.append("trace id: use up to 32 hex digits (0-9, a-f)")
            trace_id = ""
        minimum: float | None = None
        if min_ms.strip():
            try:
                minimum = float(min_ms)
                if minimum < 0:
                    raise ValueError
            except ValueError:
                problems.append("min duration: a number of milliseconds, 0 or more")
                minimum = None
        return cls(
            trace_id=trace_id.strip().lower() or None,
            service=service.strip() or None,
            operation=operation.strip() or None,
            min_ms=minimum,
            errors=errors in ("1", "on", "true"),
            problems=tuple(problems),
        )

    @property
    def active(self) -> bool:
        return any((self.trace_id, self.service, self.operation, self.min_ms, self.errors))

    @property
    def query(self) -> str:
        fields = {
            "trace_id": self.trace_id,
            "service": self.service,
            "operation": self.operation,
            "min_ms": self.min_ms,
            "errors": "1" if self.errors else None,
        }
        return urlencode({k: v for k, v in fields.items() if v is not None})


Field = Annotated[str, Query(max_length=200)]


def search(
    trace_id: Field = "", service: Field = "", operation: Field = "", min_ms: Field = "",
    errors: Field = "",
) -> TraceQuery:  # fmt: skip
    """The search form's fields, as a dependency."""
    return TraceQuery.parse(trace_id, service, operation, min_ms, errors)


Search = Annotated[TraceQuery, Depends(search)]


def _traces(store: SpanStore, q: TraceQuery) -> list[TraceOutline]:
    return store.recent_traces(
        service=q.service,
        operation=q.operation,
        min_duration_ms=q.min_ms,
        errors_only=q.errors,
        trace_id=q.trace_id,
        limit=50,
    )


def _pools(store: SpanStore) -> list[PoolView]:
    return store.pools(since_ns=time.time_ns() - POOL_WINDOW_S * 1_000_000_000)


async def _common(request: Request, settings: ConsoleSettings, page: str) -> dict[str, Any]:
    board: HealthBoard = request.app.state.health
    return {
        "page": page,
        "refresh_s": settings.refresh_s,
        "jaeger_url": str(settings.jaeger_url).rstrip("/") if settings.jaeger_url else None,
        "health": await board.check(),
    }


def _render(
    request: Request, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/", response_class=HTMLResponse)
async def traces_page(
    request: Request, store: Store, settings: Settings, q: Search
) -> HTMLResponse:
    """Recent traces, searchable, updating themselves."""
    traces = await run_in_threadpool(_traces, store, q)
    services = await run_in_threadpool(store.services)
    context = await _common(request, settings, "traces")
    context.update(traces=traces, services=services, q=q, searched=q.active)
    return _render(request, "traces.html", context)


@router.get("/fragments/traces", response_class=HTMLResponse)
async def trace_rows(request: Request, store: Store, settings: Settings, q: Search) -> HTMLResponse:
    traces = await run_in_threadpool(_traces, store, q)
    jaeger = str(settings.jaeger_url).rstrip("/") if settings.jaeger_url else None
    context = {"traces": traces, "jaeger_url": jaeger, "searched": q.active}
    return _render(request, "_trace_rows.html", context)


def _facts(r: _waterfall.Row) -> list[tuple[str, str]]:
    """A span's facts for the detail panel, rendered on the server and by the script alike."""
    facts = [
        ("Kind", r.span.kind),
        ("Duration", _ms(r.duration_ms)),
        ("Status", r.span.status + (f": {r.span.status_message}" if r.span.status_message else "")),
    ]
    if r.wait_ms:
        facts.append(("Queue wait", f"{_ms(r.wait_ms)} in {r.queue}"))
    facts.append(("Span id", r.span.span_id))
    return facts


def _span_json(w: _waterfall.Waterfall) -> str:
    data = {}
    for r in w.rows:
        data[r.span.span_id] = {
            "name": r.span.name,
            "service": r.span.service,
            "colour": colour(r.span.service),
            "facts": _facts(r),
            "attributes": [(k, str(v)) for k, v in r.attributes],
            "events": [
                {
                    "name": e.get("name", ""),
                    "attributes": [(k, str(v)) for k, v in (e.get("attributes") or {}).items()],
                }
                for e in r.span.events
            ],
        }
    return embedded_json(data)


#: What may not appear literally in JSON inside <script>: "</script>", "<!--" and the line
#: separators JavaScript once treated as newlines; as \uXXXX escapes JSON.parse reads them back.
_SCRIPT_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def embedded_json(data: object) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element, whatever strings a span
    carried (``</script><script>…``, ``<!--``)."""
    text = json.dumps(data)
    for char, escape in _SCRIPT_UNSAFE.items():
        text = text.replace(char, escape)
    return text


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def trace_page(
    request: Request,
    store: Store,
    settings: Settings,
    trace_id: str,
    span: Annotated[str, Query(max_length=16)] = "",
    level: Annotated[str, Query(max_length=20)] = LEVELS[0],
) -> HTMLResponse:
    """One trace as a waterfall across services, with its log lines under their spans (of
    ``level`` and above) and a span's detail."""
    context = await _common(request, settings, "traces")
    if not TRACE_ID.match(trace_id):
        context.update(title="Malformed trace id", detail="A trace id is 32 hex digits.")
        return _render(request, "error.html", context, 422)
    trace_id = trace_id.lower()
    spans = await run_in_threadpool(store.trace_spans, trace_id=trace_id)
    if not spans:
        context.update(
            title="Unknown trace",
            detail=f"No span of trace {trace_id} is stored "
            "(never received, or dropped by retention).",
        )
        return _render(request, "error.html", context, 404)
    problems = []
    if level not in LEVELS:
        problems.append(f"log level: one of {', '.join(LEVELS)}")
        level = LEVELS[0]
    logs, truncated = await run_in_threadpool(store.trace_logs, trace_id=trace_id, min_level=level)
    w = _waterfall.build(spans)
    entries, unplaced = _waterfall.with_logs(w, logs)
    detail = next((r for r in w.rows if r.span.span_id == span), None)
    context.update(
        trace_id=trace_id,
        w=w,
        entries=entries,
        unplaced=unplaced,
        log_count=len(logs),
        logs_truncated=truncated,
        levels=LEVELS,
        level=level,
        problems=problems,
        selected=span,
        detail=detail,
        detail_facts=_facts(detail) if detail else [],
        span_json=_span_json(w),
    )
    return _render(request, "trace.html", context)


@router.get("/pools", response_class=HTMLResponse)
async def pools_page(request: Request, store: Store, settings: Settings) -> HTMLResponse:
    """Each worker pool over the last minutes, from the autoscaler's decisions."""
    context = await _common(request, settings, "pools")
    context.update(pools=await run_in_threadpool(_pools, store), window_min=POOL_WINDOW_S // 60)
    return _render(request, "pools.html", context)


@router.get("/fragments/pools", response_class=HTMLResponse)
async def pool_cards(request: Request, store: Store) -> HTMLResponse:
    return _render(request, "_pools.html", {"pools": await run_in_threadpool(_pools, store)})


@router.get("/fragments/health", response_class=HTMLResponse)
async def health_chips(request: Request) -> HTMLResponse:
    board: HealthBoard = request.app.state.health
    return _render(request, "_health.html", {"health": await board.check()})


def _window(minutes: str) -> tuple[int, list[str]]:
    """The services page's window, checked: a bad one is named and the default used."""
    if minutes.isdigit() and int(minutes) in WINDOWS_MIN:
        return int(minutes), []
    choices = ", ".join(map(str, WINDOWS_MIN))
    return DEFAULT_WINDOW_MIN, [f"window: one of {choices} minutes"]


DEFAULT_WINDOW_MIN = 5
SERVICES_REFRESH_S = 10
Window = Annotated[str, Query(max_length=8)]


@router.get("/services", response_class=HTMLResponse)
async def services_page(
    request: Request, store: Store, settings: Settings, minutes: Window = str(DEFAULT_WINDOW_MIN)
) -> HTMLResponse:
    """Rate, errors and latency per service and route, and per queue, from the spans."""
    window, problems = _window(minutes)
    context = await _common(request, settings, "services")
    context.update(
        perf=await run_in_threadpool(performance, store, window),
        minutes=window,
        windows=WINDOWS_MIN,
        problems=problems,
        # PERF: the figures read every entry span of the window (bench/services_page.py)
        every_s=max(round(settings.refresh_s), SERVICES_REFRESH_S),
    )
    return _render(request, "services.html", context)


@router.get("/fragments/services", response_class=HTMLResponse)
async def services_tables(
    request: Request, store: Store, minutes: Window = str(DEFAULT_WINDOW_MIN)
) -> HTMLResponse:
    window, _ = _window(minutes)
    context = {"perf": await run_in_threadpool(performance, store, window), "minutes": window}
    return _render(request, "_services.html", context)
