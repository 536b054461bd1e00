"""The services page's figures from stored spans: per service and route, per queue; exact
percentiles, bounded groups, example traces; what a hostile exporter sends cannot break it."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from flotilla.console._otlp import SpanRecord
from flotilla.console._store import SpanStore
from tests.console.conftest import ServiceTracer

pytestmark = pytest.mark.integration


def entry(
    n: int,
    *,
    service: str = "orders-api",
    kind: str = "SERVER",
    ms: float = 10.0,
    error: bool = False,
    ago_s: float = 1.0,
    **attributes: Any,
) -> SpanRecord:
    start = time.time_ns() - int(ago_s * 1e9)
    return SpanRecord(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        parent_span_id=None,
        name=str(attributes.pop("name", "POST /orders")),
        kind=kind,
        service=service,
        start=start,
        end=start + int(ms * 1e6),
        status="ERROR" if error else "UNSET",
        status_message="",
        attributes=attributes,
    )


def routed(n: int, **kw: Any) -> SpanRecord:
    return entry(n, **{"http.route": "/orders", "http.request.method": "POST"}, **kw)


def services(store: SpanStore, minutes: int = 5) -> dict[str, Any]:
    from flotilla.console._deps import performance

    perf = performance(store, minutes)
    return {
        "services": {s.service: s for s in perf.services},
        "queues": {q.queue: q for q in perf.queues},
    }


def test_a_route_has_its_rate_errors_and_exact_percentiles_and_its_example_traces(
    tmp_path: Path,
) -> None:
    """100 requests of 1..100 ms, two of them failed: p50 50, p95 95, p99 99 (nearest rank);
    rate is per second over the five-minute window; the slowest trace is the 100 ms one and
    the failed one the newest failure. A request older than the window does not count."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    spans = [routed(n, ms=n, error=n in (7, 30), ago_s=200 - n) for n in range(1, 101)]
    spans.append(routed(500, ms=9999, ago_s=400))  # before the window
    store.add_spans(spans=spans)
    (route,) = services(store)["services"]["orders-api"].routes
    assert (route.operation, route.requests, route.errors) == ("POST /orders", 100, 2)
    assert route.rate_per_s == round(100 / 300, 3)
    assert route.error_ratio == 0.02
    assert (route.latency.p50, route.latency.p95, route.latency.p99) == (50, 95, 99)
    assert route.examples.slowest == f"{100:032x}" and route.examples.slowest_ms == 100
    assert route.examples.failed == f"{30:032x}"  # newer than 7
    assert services(store, 15)["services"]["orders-api"].total.requests == 101


def test_routes_are_templates_and_unrouted_requests_share_one_row(tmp_path: Path) -> None:
    """Raw paths never become rows: spans without ``http.route`` count under their method."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    store.add_spans(
        spans=[routed(1), routed(2)]
        + [
            entry(10 + n, service="edge", name=f"GET /x/{n}", **{"http.request.method": "GET"})
            for n in range(50)
        ]
    )
    found = services(store)["services"]
    assert [r.operation for r in found["orders-api"].routes] == ["POST /orders"]
    assert [(r.operation, r.requests) for r in found["edge"].routes] == [("GET (unrouted)", 50)]


def test_a_queue_has_messages_retries_failures_and_wait(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    consumed = [
        entry(
            n,
            service="orders-worker",
            kind="CONSUMER",
            name="process orders",
            ms=5,
            error=n == 3,
            **{
                "messaging.destination.name": "orders",
                "messaging.dramatiq.queue_wait_ms": float(n * 10),
                "messaging.dramatiq.attempt": 2 if n in (3, 4) else 1,
            },
        )
        for n in range(1, 11)
    ]
    store.add_spans(spans=consumed)
    found = services(store)
    assert found["services"] == {}  # a consumer span is a queue's, not a route's
    queue = found["queues"]["orders"]
    assert (queue.messages, queue.retries, queue.failures) == (10, 2, 1)
    assert queue.consumers == ["orders-worker"]
    assert (queue.wait.p50, queue.wait.p95) == (50.0, 100.0)
    assert queue.examples.failed == f"{3:032x}"


def test_attributes_of_the_wrong_type_are_ignored_not_fatal(tmp_path: Path) -> None:
    """A hostile exporter's route as a list, wait as a string, attempt as a bool: the spans
    are stored and counted, the odd values are left out."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    store.add_spans(
        spans=[
            entry(1, **{"http.route": ["/a"], "http.request.method": {"x": 1}}),
            entry(
                2,
                kind="CONSUMER",
                **{
                    "messaging.destination.name": "orders",
                    "messaging.dramatiq.queue_wait_ms": "12",
                    "messaging.dramatiq.attempt": True,
                },
            ),
        ]
    )
    found = services(store)
    assert [r.operation for r in found["services"]["orders-api"].routes] == ["POST /orders"]
    queue = found["queues"]["orders"]
    assert (queue.messages, queue.retries, queue.wait.p95) == (1, 0, 0.0)


def test_retention_drops_a_traces_entries_with_it(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=60)
    store.add_spans(spans=[routed(1, ago_s=30), routed(2, ago_s=120)])
    store.prune()
    assert services(store, 5)["services"]["orders-api"].total.requests == 1


def test_a_store_from_before_the_services_page_files_its_spans_entries(tmp_path: Path) -> None:
    """A version-2 store (no entries table) opened by this console: its spans count."""
    path = str(tmp_path / "old.db")
    store = SpanStore(path, max_spans=100, max_age_s=3600)
    store.add_spans(spans=[routed(1), entry(2, **{"http.route": ["odd"]})])
    store.close()
    with sqlite3.connect(path) as connection:
        connection.executescript("DROP TABLE entries; PRAGMA user_version = 2;")
    found = services(SpanStore(path, max_spans=100, max_age_s=3600))["services"]["orders-api"]
    # the second has no usable route or method: it counts under its span name, the same here
    assert [(r.operation, r.requests) for r in found.routes] == [("POST /orders", 2)]


def test_the_services_api_and_page_from_real_exports(
    console: str, service_tracer: ServiceTracer
) -> None:
    """Spans exported by the SDK: the JSON answer and the page name the service, its route and
    its queue; a window that is not offered is a problem (API) or named on the page."""
    orders = service_tracer("orders-api").get_tracer("t")
    worker = service_tracer("orders-worker").get_tracer("t")
    for n in range(4):
        with orders.start_as_current_span(
            "POST /orders",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/orders", "http.request.method": "POST"},
        ) as span:
            if n == 0:
                span.set_status(Status(StatusCode.ERROR))
        with worker.start_as_current_span(
            "process orders",
            kind=SpanKind.CONSUMER,
            attributes={"messaging.destination.name": "orders"},
        ):
            pass
    answer = httpx.get(f"{console}/api/services").json()
    (service,) = answer["services"]
    assert (service["service"], service["total"]["requests"], service["total"]["errors"]) == (
        "orders-api",
        4,
        1,
    )
    assert service["routes"][0]["examples"]["failed"]
    assert [q["queue"] for q in answer["queues"]] == ["orders"]
    assert httpx.get(f"{console}/api/services", params={"minutes": 15}).json()["window_s"] == 900
    refused = httpx.get(f"{console}/api/services", params={"minutes": 7})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "minutes"
    page = httpx.get(f"{console}/services").text
    assert 'data-service="orders-api"' in page and 'data-queue="orders"' in page
    assert "POST /orders" in page and "/traces/" in page
    assert "window: one of" in httpx.get(f"{console}/services", params={"minutes": "x"}).text


def test_an_exporter_naming_every_span_anew_gets_fifty_rows_not_thousands(tmp_path: Path) -> None:
    """Spans with neither route nor method group by name; past 50 rows the rest fold into one
    row that still counts them all."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    store.add_spans(spans=[entry(n, name=f"op {n}", ms=n % 7 + 1) for n in range(1, 301)])
    found = services(store)["services"]["orders-api"]
    assert len(found.routes) == 50
    assert found.routes[-1].operation == "(other routes)"
    assert sum(r.requests for r in found.routes) == found.total.requests == 300


def test_a_span_sent_again_with_another_start_counts_once(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    store.add_spans(spans=[routed(1, ago_s=10)])
    store.add_spans(spans=[routed(1, ago_s=5)])
    assert services(store)["services"]["orders-api"].total.requests == 1


def test_the_example_trace_is_of_the_row_even_when_another_span_starts_with_it(
    tmp_path: Path,
) -> None:
    """Two services' spans starting at the same nanosecond and lasting as long: each row's
    "slowest" names its own trace."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=10_000, max_age_s=3600)
    a, b = routed(1), routed(2, service="inventory-api")
    store.add_spans(spans=[a, dataclasses.replace(b, start=a.start, end=a.end)])
    found = services(store)["services"]
    assert found["orders-api"].total.examples.slowest == f"{1:032x}"
    assert found["inventory-api"].total.examples.slowest == f"{2:032x}"


def test_the_migration_reads_old_attributes_that_are_not_json(tmp_path: Path) -> None:
    """An old store may hold NaN in a span's attributes (not JSON to SQLite): the console
    still opens it and counts the span."""
    path = str(tmp_path / "old.db")
    SpanStore(path, max_spans=100, max_age_s=3600).add_spans(spans=[routed(1)])
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "DROP TABLE entries; PRAGMA user_version = 2; "
            """UPDATE spans SET attributes = '{"http.route": "/orders", "x": NaN}';"""
        )
    found = services(SpanStore(path, max_spans=100, max_age_s=3600))["services"]["orders-api"]
    assert found.total.requests == 1
