"""The console receives real OTLP/HTTP exports (protobuf, JSON, gzip) and says what it kept."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from flotilla.console import ConsoleSettings, create_app
from tests.console.conftest import ServiceTracer
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_trace_across_two_services_comes_back_with_its_parent_chain(
    console: str, service_tracer: ServiceTracer
) -> None:
    """Two SDKs (edge, orders-api) export one trace; the console returns it whole."""
    edge, orders = service_tracer("edge"), service_tracer("orders-api")
    with edge.get_tracer("t").start_as_current_span(
        "GET /api/orders", kind=SpanKind.SERVER
    ) as root:
        root.set_attribute("http.route", "/api/orders")
        with orders.get_tracer("t").start_as_current_span(
            "POST /orders", kind=SpanKind.CLIENT, context=set_span_in_context(root)
        ) as child:
            child.set_attribute("order.items", 3)
            child.add_event("reserved", {"sku": "FLT-KAYAK"})
            child.set_status(Status(StatusCode.ERROR, "boom"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")

    answer = httpx.get(f"{console}/api/traces/{trace_id}")
    assert answer.status_code == 200
    trace = answer.json()
    assert trace["trace_id"] == trace_id
    first, second = trace["spans"]  # ordered by start: the parent started first
    assert (first["span_id"], first["parent_span_id"]) == (root_id, None)
    assert (first["name"], first["kind"], first["service"]) == ("GET /api/orders", "SERVER", "edge")
    assert first["status"] == "UNSET"
    assert first["attributes"] == {"http.route": "/api/orders"}
    assert second["parent_span_id"] == root_id
    assert (second["kind"], second["service"]) == ("CLIENT", "orders-api")
    assert (second["status"], second["status_message"]) == ("ERROR", "boom")
    assert second["attributes"] == {"order.items": 3}
    assert second["events"][0]["name"] == "reserved"
    assert second["events"][0]["attributes"] == {"sku": "FLT-KAYAK"}
    # Nanosecond integers, exactly as the SDK recorded them.
    assert first["start"] == root.start_time and first["end"] == root.end_time
    assert second["start"] == child.start_time and second["end"] == child.end_time
    assert first["start"] <= second["start"] <= second["end"] <= first["end"]

    listing = httpx.get(f"{console}/api/traces", params={"service": "orders-api"}).json()
    assert listing["traces"] == [
        {
            "trace_id": trace_id,
            "root_service": "edge",
            "root_name": "GET /api/orders",
            "start": root.start_time,
            "duration_ms": round((root.end_time - root.start_time) / 1e6, 3),
            "span_count": 2,
            "services": ["edge", "orders-api"],
            "error": True,
        }
    ]


def test_the_sdk_exporter_may_gzip_its_exports(console: str, service_tracer: ServiceTracer) -> None:
    with (
        service_tracer("inventory-api", gzip=True)
        .get_tracer("t")
        .start_as_current_span("GET /products") as span
    ):
        pass
    trace_id = format(span.get_span_context().trace_id, "032x")
    (stored,) = httpx.get(f"{console}/api/traces/{trace_id}").json()["spans"]
    assert (stored["service"], stored["name"]) == ("inventory-api", "GET /products")


def otlp_json(*, span_overrides: dict[str, Any] | None = None, extra_spans: int = 0) -> bytes:
    """An OTLP/JSON export as the specification writes it (hex ids, string nanos)."""
    now = time.time_ns()
    span = {
        "traceId": TRACE_ID,
        "spanId": "00f067aa0ba902b7",
        "name": "checkout",
        "kind": 2,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 5_000_000),
        "attributes": [
            {"key": "items", "value": {"intValue": "3"}},
            {"key": "express", "value": {"boolValue": True}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
        ],
        "events": [{"name": "paid", "timeUnixNano": now + 1000, "attributes": []}],
        "status": {"code": 1},
    } | (span_overrides or {})
    spans = [span] + [
        {**span, "spanId": f"{i + 1:016x}", "parentSpanId": "00f067aa0ba902b7"}
        for i in range(extra_spans)
    ]
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def post(console: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{console}/v1/traces", content=body, headers={"Content-Type": content_type, **headers}
    )


def test_an_otlp_json_export_is_stored_and_answered_in_json(console: str) -> None:
    answer = post(console, otlp_json(), "application/json; charset=utf-8")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    (span,) = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]
    assert (span["service"], span["kind"], span["status"]) == ("shop", "SERVER", "OK")
    assert span["attributes"] == {"items": 3, "express": True, "ratio": 0.5, "tags": ["a"]}
    assert span["end"] - span["start"] == 5_000_000
    assert span["events"][0]["name"] == "paid"


def test_otlp_json_enums_may_be_names_and_times_numbers(console: str) -> None:
    now = time.time_ns()
    body = otlp_json(
        span_overrides={
            "kind": "SPAN_KIND_PRODUCER",
            "status": {"code": "STATUS_CODE_ERROR", "message": "queue full"},
            "startTimeUnixNano": now,
            "endTimeUnixNano": now + 7,
        }
    )
    assert post(console, body, "application/json").status_code == 200
    (span,) = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]
    assert (span["kind"], span["status"], span["status_message"]) == (
        "PRODUCER",
        "ERROR",
        "queue full",
    )
    assert (span["start"], span["end"]) == (now, now + 7)


def test_a_gzipped_json_export_is_accepted(console: str) -> None:
    answer = post(
        console, gzip.compress(otlp_json()), "application/json", **{"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert httpx.get(f"{console}/api/traces/{TRACE_ID}").status_code == 200


def test_spans_without_valid_ids_are_rejected_one_by_one_as_a_partial_success(
    console: str,
) -> None:
    """OTLP partial success: the good spans are kept, the answer counts the rejected ones."""
    body = json.loads(otlp_json(extra_spans=1))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"].append({"name": "no ids"})
    answer = post(console, json.dumps(body).encode(), "application/json")
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 is a string in protobuf's JSON mapping
    assert "traceId" in partial["errorMessage"]
    assert len(httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]) == 2


def test_a_protobuf_export_is_answered_with_a_protobuf_response(console: str) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes(16), bytes.fromhex("00f067aa0ba902b7")  # zero trace id
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    answer = post(console, request.SerializeToString(), "application/x-protobuf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1


@pytest.mark.parametrize(
    ("content_type", "body", "headers", "status", "field"),
    [
        pytest.param(
            "application/x-protobuf", b"\xff\xff\xff junk", {}, 400, "body", id="protobuf"
        ),
        pytest.param("application/json", b"{not json", {}, 400, "body", id="json-syntax"),
        pytest.param("application/json", b'{"resourceSpans": 7}', {}, 400, "body", id="json-shape"),
        pytest.param(
            "application/json",
            gzip.compress(b"{}")[:-6],
            {"Content-Encoding": "gzip"},
            400,
            "body",
            id="truncated-gzip",
        ),
        pytest.param("text/plain", b"hello", {}, 415, "Content-Type", id="content-type"),
        pytest.param(
            "application/json", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding", id="br"
        ),
    ],
)
def test_bad_exports_are_answered_with_a_problem_naming_the_fault(
    console: str,
    content_type: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    field: str,
) -> None:
    answer = post(console, body, content_type, **headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status
    assert problem["errors"][0]["field"] == field
    assert httpx.get(f"{console}/api/traces").json() == {"traces": []}


def test_exports_over_the_size_limit_are_refused_even_when_they_compress_well(
    tmp_path: Any,
) -> None:
    settings = ConsoleSettings(database_path=str(tmp_path / "c.db"), max_request_bytes=4096)
    padding = [{"key": "pad", "value": {"stringValue": "x" * 10_000}}]
    bomb = gzip.compress(otlp_json(span_overrides={"attributes": padding}))
    assert len(bomb) < 4096  # small on the wire, over the limit once decompressed
    with serve_in_thread(create_app(settings)) as console:
        too_long = post(console, b"{" + b" " * 5000 + b"}", "application/json")
        inflated = post(console, bomb, "application/json", **{"Content-Encoding": "gzip"})
        assert post(console, otlp_json(), "application/json").status_code == 200
    for answer in (too_long, inflated):
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
