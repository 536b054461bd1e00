"""The console receives real OTLP/HTTP exports from the OpenTelemetry SDK and serves them back."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from flotilla.console import ConsoleSettings, SpanStore, create_app
from flotilla.console._otlp import SpanRecord
from tests.support.servers import serve_in_thread


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    settings = ConsoleSettings(database_path=str(tmp_path / "console.db"))
    with serve_in_thread(create_app(settings)) as base_url:
        yield base_url


def provider(base_url: str, service: str) -> TracerProvider:
    """A real SDK pipeline of one service exporting OTLP/protobuf to the console."""
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base_url}/v1/traces"))
    )
    return tracer_provider


def test_spans_of_two_services_come_back_as_one_trace_with_its_parent_chain(
    console: str,
) -> None:
    edge, orders = provider(console, "edge"), provider(console, "orders-api")
    with edge.get_tracer("t").start_as_current_span(
        "GET /api/orders", kind=SpanKind.SERVER
    ) as root:
        root.set_attribute("http.route", "/api/orders")
        context = set_span_in_context(root)
        with orders.get_tracer("t").start_as_current_span(
            "POST /orders", kind=SpanKind.SERVER, context=context
        ) as child:
            child.add_event("reserved", {"sku": "FLT-KAYAK"})
            child.set_status(Status(StatusCode.ERROR, "boom"))
    trace_id = format(root.get_span_context().trace_id, "032x")

    trace = httpx.get(f"{console}/api/traces/{trace_id}").json()
    assert trace["trace_id"] == trace_id
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["GET /api/orders"]["service"] == "edge"
    assert spans["GET /api/orders"]["parent_span_id"] is None
    assert spans["GET /api/orders"]["kind"] == "SERVER"
    assert spans["GET /api/orders"]["attributes"]["http.route"] == "/api/orders"
    assert spans["POST /orders"]["service"] == "orders-api"
    assert spans["POST /orders"]["parent_span_id"] == spans["GET /api/orders"]["span_id"]
    assert spans["POST /orders"]["status"] == "ERROR"
    assert spans["POST /orders"]["events"][0]["name"] == "reserved"
    assert spans["POST /orders"]["end"] > spans["POST /orders"]["start"] > 1.6e18

    listing = httpx.get(f"{console}/api/traces", params={"service": "orders-api"}).json()
    (summary,) = [t for t in listing["traces"] if t["trace_id"] == trace_id]
    assert summary["root_service"] == "edge"
    assert summary["span_count"] == 2
    assert summary["services"] == ["edge", "orders-api"]
    assert summary["error"] is True


def test_service_filter_and_limit(console: str) -> None:
    for service in ("inventory-api", "inventory-api", "edge"):
        with provider(console, service).get_tracer("t").start_as_current_span("op"):
            pass
    only = httpx.get(f"{console}/api/traces", params={"service": "inventory-api"}).json()
    assert len(only["traces"]) == 2
    assert len(httpx.get(f"{console}/api/traces", params={"limit": 1}).json()["traces"]) == 1
    assert httpx.get(f"{console}/api/traces", params={"limit": 0}).status_code == 422


def otlp_json(trace_id: str) -> dict[str, object]:
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "00f067aa0ba902b7",
                                "name": "checkout",
                                "kind": 2,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 5_000_000),
                                "attributes": [{"key": "items", "value": {"intValue": "3"}}],
                                "status": {"code": 1},
                            }
                        ]
                    }
                ],
            }
        ]
    }


def test_otlp_json_and_gzip_are_accepted(console: str) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = gzip.compress(json.dumps(otlp_json(trace_id)).encode())
    answer = httpx.post(
        f"{console}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    (span,) = httpx.get(f"{console}/api/traces/{trace_id}").json()["spans"]
    assert span["service"] == "shop"
    assert span["kind"] == "SERVER"
    assert span["status"] == "OK"
    assert span["attributes"] == {"items": 3}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/x-protobuf", b"\xff\xff\xff not protobuf", 400),
        ("application/json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}', 400),
        ("text/plain", b"hello", 415),
    ],
)
def test_bad_exports_are_problems(
    console: str, content_type: str, body: bytes, status: int
) -> None:
    answer = httpx.post(
        f"{console}/v1/traces", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


def test_unknown_and_malformed_trace_ids(console: str) -> None:
    assert httpx.get(f"{console}/api/traces/{'0' * 31}1").status_code == 404
    assert httpx.get(f"{console}/api/traces/not-a-trace").status_code == 422


def _record(trace: int, start: int) -> SpanRecord:
    return SpanRecord(
        f"{trace:032x}",
        f"{trace:016x}",
        None,
        "op",
        "INTERNAL",
        "svc",
        start,
        start + 1,
        "UNSET",
        "",
        {},
        [],
        {},
    )


def test_retention_drops_the_oldest_traces_first(tmp_path: Path) -> None:
    store = SpanStore(str(tmp_path / "s.db"), max_spans=10, max_age_s=3600)
    now = time.time_ns()
    store.add([_record(i, now - (100 - i) * 1_000_000) for i in range(1, 31)])
    store.add([_record(99, now - 7200 * 1_000_000_000)])  # two hours old
    store.prune(now)
    kept = [t["trace_id"] for t in store.recent_traces(service=None, limit=100)]
    assert len(kept) == 10
    assert kept[0] == f"{30:032x}"
    assert f"{99:032x}" not in kept
