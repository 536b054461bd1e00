"""The trace API lists the newest traces, filters them by service, and keeps a bounded store."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from flotilla.console import ConsoleSettings, SpanRecord, SpanStore, create_app
from tests.console.conftest import ServiceTracer
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

SECOND = 1_000_000_000


def span(trace: int, start: int, *, service: str = "svc", parent: str | None = None) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{trace:08x}{start % 2**32:08x}",
        parent_span_id=parent,
        name=f"op {trace}",
        kind="INTERNAL",
        service=service,
        start=start,
        end=start + 1000,
        status="UNSET",
        status_message="",
    )


def one_span_export(trace: int, start: int, service: str = "svc") -> bytes:
    """An OTLP/JSON export of one span of ``trace`` starting at ``start``."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": f"{trace:032x}",
                                    "spanId": f"{trace:016x}",
                                    "name": f"op {trace}",
                                    "startTimeUnixNano": str(start),
                                    "endTimeUnixNano": str(start + 1000),
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def test_traces_are_listed_newest_first_filtered_by_service_and_limited(
    console: str, service_tracer: ServiceTracer
) -> None:
    for service in ("inventory-api", "edge", "inventory-api"):
        with service_tracer(service).get_tracer("t").start_as_current_span(f"op of {service}"):
            pass
    every = httpx.get(f"{console}/api/traces").json()["traces"]
    assert [t["root_service"] for t in every] == ["inventory-api", "edge", "inventory-api"]
    assert [t["start"] for t in every] == sorted((t["start"] for t in every), reverse=True)

    inventory = httpx.get(f"{console}/api/traces", params={"service": "inventory-api"}).json()
    assert [t["trace_id"] for t in inventory["traces"]] == [
        every[0]["trace_id"],
        every[2]["trace_id"],
    ]
    newest = httpx.get(f"{console}/api/traces", params={"limit": 1}).json()["traces"]
    assert [t["trace_id"] for t in newest] == [every[0]["trace_id"]]
    nobody = httpx.get(f"{console}/api/traces", params={"service": "nobody"}).json()
    assert nobody == {"traces": []}


@pytest.mark.parametrize("limit", ["0", "501", "many"])
def test_a_bad_limit_is_a_problem_naming_it(console: str, limit: str) -> None:
    answer = httpx.get(f"{console}/api/traces", params={"limit": limit})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "limit"


def test_an_unknown_trace_is_404_and_a_malformed_id_422(console: str) -> None:
    unknown = httpx.get(f"{console}/api/traces/{'ab' * 16}")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["errors"][0]["field"] == "trace_id"
    for malformed in ("not-a-trace", "ab" * 15, "zz" * 16):
        answer = httpx.get(f"{console}/api/traces/{malformed}")
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "trace_id"


def test_upper_case_trace_ids_find_the_trace(console: str) -> None:
    now = time.time_ns()
    assert httpx.post(
        f"{console}/v1/traces",
        content=one_span_export(0xABC, now),
        headers={"Content-Type": "application/json"},
    ).is_success
    answer = httpx.get(f"{console}/api/traces/{0xABC:032X}")
    assert answer.json()["trace_id"] == f"{0xABC:032x}"


def test_the_root_is_the_parentless_span_even_when_it_arrives_last(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "s.db"), max_spans=100, max_age_s=3600)
    now = time.time_ns()
    root = span(1, now, service="edge")
    store.add_spans(spans=[span(1, now + 5, service="orders-worker", parent=root.span_id)])
    (partial,) = store.recent_traces(service=None, limit=5)
    assert partial.root_service == "orders-worker"  # its parent is not stored yet
    store.add_spans(spans=[root])
    (whole,) = store.recent_traces(service="orders-worker", limit=5)
    assert (whole.root_service, whole.root_name, whole.span_count) == ("edge", "op 1", 2)
    assert whole.start == now and whole.services == ("edge", "orders-worker")


def test_retention_keeps_the_newest_traces_within_the_span_budget(tmp_path: Path) -> None:
    """Over HTTP: with room for 10 spans, 30 one-span traces leave the 10 newest."""
    settings = ConsoleSettings(database_path=str(tmp_path / "c.db"), retention_max_spans=10)
    now = time.time_ns()
    with serve_in_thread(create_app(settings)) as console, httpx.Client() as http:
        for trace in range(1, 31):
            answer = http.post(
                f"{console}/v1/traces",
                content=one_span_export(trace, now - (100 - trace) * SECOND),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 200
        kept = httpx.get(f"{console}/api/traces", params={"limit": 100}).json()["traces"]
        assert [t["trace_id"] for t in kept] == [f"{t:032x}" for t in range(30, 20, -1)]
        assert httpx.get(f"{console}/api/traces/{1:032x}").status_code == 404


def test_retention_drops_whole_traces_and_those_past_the_age_limit(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "s.db"), max_spans=4, max_age_s=3600)
    now = time.time_ns()
    store.add_spans(spans=[span(9, now - 2 * 3600 * SECOND)])  # two hours old
    store.add_spans(spans=[span(1, now - 10 * SECOND), span(1, now - 1 * SECOND)])
    store.add_spans(spans=[span(2, now - 5 * SECOND), span(2, now - 4 * SECOND)])
    store.add_spans(spans=[span(3, now - 3 * SECOND)])
    # Gone: the old one, and trace 1 that started first (though its last span is the newest).
    kept = [t.trace_id for t in store.recent_traces(service=None, limit=10)]
    assert kept == [f"{3:032x}", f"{2:032x}"]
    assert store.span_count() == 3
    assert [t.trace_id for t in store.recent_traces(service="svc", limit=10)] == kept
    assert store.prune(now_ns=now + 3600 * SECOND) == 2  # an hour later both are too old
    assert store.recent_traces(service="svc", limit=10) == []
    assert store.span_count() == 0


def test_a_store_written_by_the_first_console_version_gets_its_trace_list(tmp_path: Path) -> None:
    """Version 1 kept only the spans table; opening it builds the trace summaries."""
    path = str(tmp_path / "old.db")
    store = SpanStore(path, max_spans=100, max_age_s=3600)
    store.add_spans(spans=[span(7, time.time_ns())])
    store.close()
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "DROP TABLE traces; DROP TABLE trace_services; PRAGMA user_version = 0;"
        )
    (trace,) = SpanStore(path, max_spans=100, max_age_s=3600).recent_traces(service="svc", limit=5)
    assert (trace.trace_id, trace.span_count) == (f"{7:032x}", 1)
