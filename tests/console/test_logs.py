"""The console receives OTLP/HTTP log exports (real SDK pipelines, protobuf and JSON) and shows
each trace's log lines with it, bounded as spans are."""

from __future__ import annotations

import gzip
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, set_span_in_context

from flotilla.console import ConsoleSettings, create_app
from flotilla.console._otlp import SpanRecord
from flotilla.console._otlp_logs import LogLine
from flotilla.console._store import SpanStore
from tests.console.conftest import ServiceTracer
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "10f067aa0ba902b7"


@pytest.fixture
def service_logger(console: str) -> Iterator[Any]:
    """Make one service's logger whose records the SDK exports to the console (protobuf), as
    flotilla.core's log export does for the root logger."""
    made: list[tuple[logging.Logger, LoggingHandler, LoggerProvider]] = []

    def make(service: str) -> logging.Logger:
        provider = LoggerProvider(resource=Resource.create({"service.name": service}))
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{console}/v1/logs"))
        )
        handler = LoggingHandler(logger_provider=provider)
        log = logging.getLogger(f"tests.logs.{service}")
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        made.append((log, handler, provider))
        return log

    yield make
    for log, handler, provider in made:
        log.removeHandler(handler)
        provider.shutdown()


def test_log_lines_of_two_services_come_back_with_their_trace_in_time_order(
    console: str, service_tracer: ServiceTracer, service_logger: Any
) -> None:
    """Records logged inside spans carry their trace and span ids; the trace's answer lists
    them by time with level, body and attributes; a record outside any span is kept apart."""
    edge, orders = service_tracer("edge"), service_tracer("orders-api")
    edge_log, orders_log = service_logger("edge"), service_logger("orders-api")
    edge_log.info("outside any trace")
    with edge.get_tracer("t").start_as_current_span(
        "GET /api/orders", kind=SpanKind.SERVER
    ) as root:
        edge_log.info("routing", extra={"route": "orders-api"})
        with orders.get_tracer("t").start_as_current_span(
            "POST /orders", kind=SpanKind.SERVER, context=set_span_in_context(root)
        ) as child:
            orders_log.warning("stock is low", extra={"sku": "FLT-KAYAK", "left": 2})
            orders_log.debug("detail")
    trace_id = format(root.get_span_context().trace_id, "032x")

    trace = httpx.get(f"{console}/api/traces/{trace_id}").json()
    logs = trace["logs"]
    assert [(line["service"], line["level"], line["body"]) for line in logs] == [
        ("edge", "info", "routing"),
        ("orders-api", "warn", "stock is low"),
        ("orders-api", "debug", "detail"),
    ]
    assert logs[0]["span_id"] == format(root.get_span_context().span_id, "016x")
    assert logs[1]["span_id"] == format(child.get_span_context().span_id, "016x")
    assert logs[1]["attributes"] == {"sku": "FLT-KAYAK", "left": 2}
    assert logs[1]["severity_number"] == 13  # WARN
    assert [line["time"] for line in logs] == sorted(line["time"] for line in logs)

    warnings = httpx.get(f"{console}/api/traces/{trace_id}", params={"level": "warn"}).json()
    assert [line["body"] for line in warnings["logs"]] == ["stock is low"]
    refused = httpx.get(f"{console}/api/traces/{trace_id}", params={"level": "loud"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


def test_the_trace_page_shows_each_log_line_under_its_span_and_filters_by_level(
    console: str, service_tracer: ServiceTracer, service_logger: Any
) -> None:
    """Server-rendered: a log row sits under its span's row, one level deeper, in time order
    among the span's children; ``?level=`` keeps only that level and above."""
    orders, log = service_tracer("orders-api"), service_logger("orders-api")
    with orders.get_tracer("t").start_as_current_span("POST /orders", kind=SpanKind.SERVER) as root:
        log.info("validating")
        with orders.get_tracer("t").start_as_current_span("INSERT orders"):
            log.info("order stored <b>bold</b>", extra={"order": "o-1"})
        log.error("payment refused")
    trace_id = format(root.get_span_context().trace_id, "032x")

    page = httpx.get(f"{console}/traces/{trace_id}").text
    rows = re.findall(r'<li class="(row|log)[^"]*" style="--depth: (\d+)', page)
    assert rows == [("row", "0"), ("log", "1"), ("row", "1"), ("log", "2"), ("log", "1")]
    assert "order stored &lt;b&gt;bold&lt;/b&gt;" in page  # escaped, never markup
    assert "3 log lines" in page

    errors_only = httpx.get(f"{console}/traces/{trace_id}", params={"level": "error"}).text
    assert "payment refused" in errors_only and "order stored" not in errors_only
    assert "1 log line at error or above" in errors_only
    bad = httpx.get(f"{console}/traces/{trace_id}", params={"level": "loud"})
    assert bad.status_code == 200 and "log level: one of" in bad.text  # all lines, and why


def logs_json(*records: dict[str, Any], service: str = "shop") -> bytes:
    """An OTLP/JSON log export as the specification writes it (hex ids, string nanos)."""
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeLogs": [{"scope": {"name": "manual"}, "logRecords": list(records)}],
                }
            ]
        }
    ).encode()


def record(**overrides: Any) -> dict[str, Any]:
    return {
        "timeUnixNano": str(time.time_ns()),
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": "hello"},
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "attributes": [{"key": "order", "value": {"stringValue": "o-1"}}],
    } | overrides


def post_logs(console: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{console}/v1/logs", content=body, headers={"Content-Type": content_type, **headers}
    )


def stored_logs(console: str, trace_id: str = TRACE_ID) -> list[dict[str, Any]]:
    """The trace's log lines (a span of the trace is stored so that the trace exists)."""
    now = time.time_ns()
    span = {
        "traceId": trace_id,
        "spanId": SPAN_ID,
        "name": "work",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
    }
    body = json.dumps(
        {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}
    ).encode()
    assert httpx.post(
        f"{console}/v1/traces", content=body, headers={"Content-Type": "application/json"}
    ).is_success
    logs: list[dict[str, Any]] = httpx.get(f"{console}/api/traces/{trace_id}").json()["logs"]
    return logs


def test_an_otlp_json_log_export_is_stored_with_a_partial_success_for_what_cannot_be(
    console: str,
) -> None:
    """Good records are kept; a bad id, a time far ahead, a bad severity are each rejected
    and counted; a structured body reads as JSON; a record's text level stands in for a
    missing number; a record without a trace id is kept but belongs to no trace."""
    export = logs_json(
        record(),
        record(body={"kvlistValue": {"values": [{"key": "n", "value": {"intValue": "3"}}]}}),
        record(severityNumber=0, severityText="WARNING", body={"stringValue": "texted"}),
        record(traceId="", spanId="", body={"stringValue": "no trace"}),
        record(traceId="xyz"),
        record(timeUnixNano=str(time.time_ns() + 3600 * 10**9)),
        record(severityNumber=99),
        "not a record",
    )
    answer = post_logs(
        console, gzip.compress(export), "application/json", **{"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "4"
    assert "traceId must be 32 hex digits" in partial["errorMessage"]
    logs = stored_logs(console)
    assert [(line["level"], line["body"]) for line in logs] == [
        ("info", "hello"),
        ("info", '{"n": 3}'),
        ("warn", "texted"),
    ]
    assert logs[0]["attributes"] == {"order": "o-1"}


def test_a_protobuf_log_export_is_answered_with_a_protobuf_response(console: str) -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "shop"
    line = resource_logs.scope_logs.add().log_records.add()
    line.time_unix_nano = time.time_ns()
    line.severity_number = 17
    line.body.string_value = "refused"
    line.trace_id, line.span_id = bytes.fromhex(TRACE_ID), bytes.fromhex(SPAN_ID)
    zero = resource_logs.scope_logs[0].log_records.add()
    zero.trace_id = bytes.fromhex("00" * 16)  # what a record logged outside a span may carry

    answer = post_logs(console, request.SerializeToString(), "application/x-protobuf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    parsed = ExportLogsServiceResponse.FromString(answer.content)
    assert not parsed.HasField("partial_success")
    assert [(x["service"], x["level"], x["body"]) for x in stored_logs(console)] == [
        ("shop", "error", "refused")
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "field"),
    [
        pytest.param("application/x-protobuf", b"\xff\xff\xff", 400, "body", id="protobuf"),
        pytest.param("application/json", b"{not json", 400, "body", id="json"),
        pytest.param("application/json", b'{"resourceLogs": 5}', 400, "body", id="shape"),
        pytest.param("application/json", b"[" * 100_000, 400, "body", id="deep"),
        pytest.param("text/plain", b"hello", 415, "Content-Type", id="content-type"),
    ],
)
def test_bad_log_exports_are_answered_with_a_problem_naming_the_fault(
    console: str, content_type: str, body: bytes, status: int, field: str
) -> None:
    answer = post_logs(console, body, content_type)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == field


def test_log_exports_are_bounded_by_size_token_and_retention(tmp_path: Path) -> None:
    """Over the size limit: 413 (also once decompressed); without the ingest token: 401; and
    the store keeps at most ``retention_max_logs`` records, the first received going first."""
    settings = ConsoleSettings(
        database_path=str(tmp_path / "c.db"),
        max_request_bytes=4096,
        retention_max_logs=5,
        ingest_token="s3cret",  # a test's token
    )
    auth = {"Authorization": "Bearer s3cret"}
    with serve_in_thread(create_app(settings)) as console:
        bomb = gzip.compress(logs_json(record(body={"stringValue": "x" * 20_000})))
        assert len(bomb) < 4096
        inflated = post_logs(
            console, bomb, "application/json", **auth, **{"Content-Encoding": "gzip"}
        )
        assert inflated.status_code == 413
        assert post_logs(console, logs_json(record()), "application/json").status_code == 401
        for n in range(60):  # a budget of 5: a retention pass after every export
            body = logs_json(record(body={"stringValue": f"line {n}"}))
            assert post_logs(console, body, "application/json", **auth).status_code == 200
        now = time.time_ns()
        span = {"traceId": TRACE_ID, "spanId": SPAN_ID, "name": "w",
                "startTimeUnixNano": str(now - 10**9), "endTimeUnixNano": str(now)}  # fmt: skip
        traces = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
        httpx.post(
            f"{console}/v1/traces", content=traces,
            headers={"Content-Type": "application/json", **auth},
        )  # fmt: skip
        kept = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["logs"]
    assert [line["body"] for line in kept] == [f"line {n}" for n in range(55, 60)]


DEEP: dict[str, Any] = {"stringValue": "x"}
for _ in range(300):
    DEEP = {"stringValue": [DEEP]}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"severityNumber": 1e400}, "severityNumber", id="severity-overflow"),
        pytest.param({"severityNumber": True}, "severityNumber", id="severity-bool"),
        pytest.param(
            {"attributes": [{"key": "n", "value": {"intValue": 1e400}}]}, "OTLP/JSON", id="int"
        ),
        pytest.param({"timeUnixNano": -5}, "0 or more", id="negative-time"),
        pytest.param({"timeUnixNano": str(2**64 - 1)}, "0 or more", id="past-sqlite"),
        pytest.param({"body": DEEP}, "stringValue must be a string", id="nested-string"),
        pytest.param({"body": {"boolValue": "yes"}}, "boolValue", id="bool"),
    ],
)
def test_a_hostile_log_record_is_rejected_alone_and_never_breaks_the_console(
    console: str, overrides: dict[str, Any], reason: str
) -> None:
    """Each of these once answered 500 (the whole export lost) or stored what made the trace's
    answer fail for good; now the record is rejected and counted, the rest kept."""
    answer = post_logs(console, logs_json(record(), record(**overrides)), "application/json")
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert reason in partial["errorMessage"]
    assert [line["body"] for line in stored_logs(console)] == ["hello"]


def test_text_that_is_not_unicode_is_stored_and_shown_replaced(console: str) -> None:
    """A lone surrogate (valid JSON, not UTF-8) in a body, an attribute and the service name
    reads as U+FFFD; a record without a body has an empty one."""
    body = logs_json(
        record(
            body={"stringValue": "bad \ud800 text"},
            attributes=[{"key": "k\udfff", "value": {"stringValue": "v\ud800"}}],
        ),
        record(body=None),
        service="svc\ud800",
    )
    assert post_logs(console, body, "application/json").status_code == 200
    first, second = stored_logs(console)
    assert (first["body"], first["service"]) == ("bad \ufffd text", "svc\ufffd")
    assert first["attributes"] == {"k\ufffd": "v\ufffd"}
    assert second["body"] == ""
    assert httpx.get(f"{console}/traces/{TRACE_ID}").status_code == 200


def test_a_long_list_of_log_lines_says_it_was_cut(console: str) -> None:
    """A trace with more lines than a page holds (2,000) says so, in the answer and on the
    page."""
    many = [record(body={"stringValue": f"line {n}"}) for n in range(2001)]
    assert post_logs(console, logs_json(*many), "application/json").status_code == 200
    assert len(stored_logs(console)) == 2000
    answer = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()
    assert answer["logs_truncated"] is True
    assert answer["logs"][-1]["body"] == "line 1999"
    assert "the trace has more" in httpx.get(f"{console}/traces/{TRACE_ID}").text


def test_a_traces_log_lines_go_when_the_span_budget_drops_it(tmp_path: Path) -> None:
    """Retention that drops a trace for the span budget drops its log lines (its page is
    gone); another trace's lines stay."""
    store = SpanStore(str(tmp_path / "c.db"), max_spans=1, max_age_s=3600, max_logs=100)
    now = time.time_ns()
    old, new = "1" * 32, "2" * 32
    for n, trace_id in enumerate((old, new)):
        store.add_logs(
            lines=[LogLine(now, "shop", 9, "info", f"line of {trace_id[0]}", trace_id, SPAN_ID)]
        )
        span = SpanRecord(trace_id, SPAN_ID, None, "w", "SERVER", "shop", now + n, now + n + 1,
                          "UNSET", "")  # fmt: skip
        store.add_spans(spans=[span])
    store.prune()
    assert store.trace_logs(trace_id=old) == ([], False)
    assert [line.body for line in store.trace_logs(trace_id=new)[0]] == ["line of 2"]
    store.close()


@pytest.mark.parametrize(("path", "table"), [("/v1/logs", "logs"), ("/v1/traces", "spans")])
def test_a_store_that_cannot_write_answers_503_with_retry_after(
    tmp_path: Path, path: str, table: str
) -> None:
    """OTLP exporters retry 503 (never a 4xx): a store that fails to write (here its table
    dropped from under it, as a damaged or full database fails) answers that, as a problem,
    with ``Retry-After``."""
    settings = ConsoleSettings(database_path=str(tmp_path / "c.db"))
    now = time.time_ns()
    span = {"traceId": TRACE_ID, "spanId": SPAN_ID, "name": "w",
            "startTimeUnixNano": str(now - 10**9), "endTimeUnixNano": str(now)}  # fmt: skip
    bodies = {
        "/v1/logs": logs_json(record()),
        "/v1/traces": json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode(),
    }
    with serve_in_thread(create_app(settings)) as console:

        def send() -> httpx.Response:
            headers = {"Content-Type": "application/json"}
            return httpx.post(f"{console}{path}", content=bodies[path], headers=headers)

        assert send().status_code == 200
        with sqlite3.connect(settings.database_path) as other:
            other.execute(f"DROP TABLE {table}")
        answer = send()
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert "retry later" in answer.json()["detail"]
