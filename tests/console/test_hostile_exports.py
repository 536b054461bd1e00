"""The console's receiver takes bodies from anyone who can reach it: none makes it fail,
spans dated far ahead are refused, a token can be required, and whatever a span says is
shown as text on the pages, never as markup. A real console (uvicorn in a thread)."""

from __future__ import annotations

import json
import re
import time
from html import unescape
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flotilla.console import ConsoleSettings, create_app
from tests.console.test_otlp_receiver import TRACE_ID, otlp_json, post
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration


def nested_value(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),  # json.loads itself recurses
        (b'{"resourceSpans": [' * 5_000 + b"]}" * 5_000, 400),
        (b"\xff\xfe not json", 400),
        (b'{"resourceSpans": "nope"}', 400),
        (b"null", 400),
    ],
)
def test_no_json_body_makes_the_receiver_fail(console: str, body: bytes, status: int) -> None:
    answer = post(console, body, "application/json")
    assert answer.status_code == status
    assert "Traceback" not in answer.text


def test_an_attribute_nested_deeper_than_the_limit_rejects_its_span_only(console: str) -> None:
    body = json.loads(otlp_json(extra_spans=1))
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["attributes"] = [{"key": "deep", "value": nested_value(200)}]
    answer = post(console, json.dumps(body).encode(), "application/json")
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "deeper" in partial["errorMessage"]
    assert len(httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]) == 1


def test_a_deep_protobuf_value_is_a_problem_not_a_crash(console: str) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes.fromhex(TRACE_ID), bytes.fromhex("00f067aa0ba902b7")
    span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    value = span.attributes.add(key="deep").value
    for _ in range(40):  # under protobuf's own recursion limit, over the console's
        value = value.array_value.values.add()
    value.string_value = "bottom"
    answer = post(console, request.SerializeToString(), "application/x-protobuf")
    assert answer.status_code == 200
    assert httpx.get(f"{console}/api/traces/{TRACE_ID}").status_code == 404


def test_a_span_dated_far_ahead_is_refused_and_a_little_ahead_kept(console: str) -> None:
    now = time.time_ns()
    a_year = 365 * 86_400 * 10**9
    far = otlp_json(
        span_overrides={"startTimeUnixNano": now + a_year, "endTimeUnixNano": now + a_year}
    )
    refused = post(console, far, "application/json").json()["partialSuccess"]
    assert refused["rejectedSpans"] == "1" and "future" in refused["errorMessage"]
    skewed = otlp_json(
        span_overrides={"startTimeUnixNano": now + 10**10, "endTimeUnixNano": now + 2 * 10**10}
    )
    assert post(console, skewed, "application/json").json() == {}
    listed = httpx.get(f"{console}/api/traces").json()["traces"]
    assert [t["trace_id"] for t in listed] == [TRACE_ID]
    (span,) = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]
    assert span["start"] == now + 10**10  # the one a year ahead was never stored


def test_with_an_ingest_token_only_exports_that_carry_it_are_taken(tmp_path: Path) -> None:
    settings = ConsoleSettings(
        database_path=str(tmp_path / "console.db"),
        ingest_token="collector-token-0123456789",  # type: ignore[arg-type]
    )
    with serve_in_thread(create_app(settings)) as console:
        anonymous = post(console, otlp_json(), "application/json")
        wrong = post(console, otlp_json(), "application/json", Authorization="Bearer guess")
        right = post(
            console,
            otlp_json(),
            "application/json",
            Authorization="Bearer collector-token-0123456789",
        )
        stored = httpx.get(f"{console}/api/traces/{TRACE_ID}").status_code
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert right.status_code == 200 and stored == 200


HOSTILE = "</script><script>alert(1)</script><!--<img src=x onerror=alert(2)>\"'&"


def test_span_strings_are_shown_as_text_on_every_page(console: str) -> None:
    body = otlp_json(
        span_overrides={
            "name": HOSTILE,
            "attributes": [{"key": HOSTILE, "value": {"stringValue": HOSTILE}}],
            "events": [{"name": HOSTILE, "timeUnixNano": time.time_ns()}],
            "status": {"code": 2, "message": HOSTILE},
        }
    )
    assert post(console, body, "application/json").status_code == 200
    for page in ("/", f"/traces/{TRACE_ID}", f"/?q={HOSTILE}"):
        html = httpx.get(f"{console}{page}").text
        assert "<script>alert" not in html and "<img src=x" not in html, page
    page = httpx.get(f"{console}/traces/{TRACE_ID}").text
    (embedded,) = re.findall(
        r'<script type="application/json" id="span-data">(.*?)</script>', page, re.S
    )
    assert "<" not in embedded and ">" not in embedded
    data = json.loads(embedded)  # what the page's script reads back: the very same text
    (span,) = data.values()
    assert span["name"] == HOSTILE
    assert [HOSTILE, HOSTILE] in span["attributes"]
    assert HOSTILE in unescape(page)  # the name is on the page, as text


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"endTimeUnixNano": str(2**64 - 1)}, "positive nanoseconds", id="end"),
        pytest.param(
            {"attributes": [{"key": "n", "value": {"intValue": 1e400}}]}, "OTLP/JSON", id="int"
        ),
        pytest.param(
            {"attributes": [{"key": "s", "value": {"stringValue": [{"stringValue": "x"}]}}]},
            "stringValue must be a string",
            id="string-smuggling-a-list",
        ),
    ],
)
def test_a_span_the_store_could_not_hold_is_rejected_alone(
    console: str, overrides: dict[str, object], reason: str
) -> None:
    """An end past SQLite's integers, an integer past a float's range, a "string" that is a
    list (which slipped past the depth limit): each once answered 500 or stored what broke
    the trace's answer; now that span is rejected and counted."""
    body = json.loads(otlp_json(extra_spans=1))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][1].update(overrides)
    answer = post(console, json.dumps(body).encode(), "application/json")
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and reason in partial["errorMessage"]
    (kept,) = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]
    assert kept["span_id"] == "00f067aa0ba902b7"


def test_a_span_name_that_is_not_unicode_is_stored_replaced(console: str) -> None:
    body = otlp_json(span_overrides={"name": "GET \ud800", "status": {"message": "\udfff"}})
    assert post(console, body, "application/json").status_code == 200
    (span,) = httpx.get(f"{console}/api/traces/{TRACE_ID}").json()["spans"]
    assert (span["name"], span["status_message"]) == ("GET \ufffd", "\ufffd")
    assert httpx.get(f"{console}/traces/{TRACE_ID}").status_code == 200
    assert httpx.get(f"{console}/").status_code == 200
