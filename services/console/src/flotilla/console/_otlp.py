"""Decoding OTLP/HTTP trace exports (protobuf and JSON) into plain span records.

OTLP/JSON is not protobuf's canonical JSON mapping: trace and span ids are hex, not base64,
enums may be numbers or names, and 64-bit integers may be strings or numbers; so JSON is
read by hand rather than with ``json_format``.

A body that is not an export at all is :class:`MalformedExport` (HTTP 400). A well-formed
export may still carry spans that cannot be stored (a missing or zero trace id, say): those
are rejected one by one and counted, and the rest is kept, which is OTLP's *partial success*.
Whoever can reach the receiver chooses what it reads, so nothing it sends can make the
console fail: attribute values nest at most :data:`MAX_VALUE_DEPTH` deep, and a span that
starts more than :data:`MAX_FUTURE_S` ahead of the console's clock (which would sit at the top
of every list for ever) is rejected.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

#: OTLP ``SpanKind`` numbers; UNSPECIFIED (0) reads as INTERNAL, the API's default kind.
KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
#: OTLP ``Status.StatusCode`` numbers.
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}
UNKNOWN_SERVICE = "unknown_service"  # what the SDKs call a process that names no service

_HEX = re.compile(r"^[0-9a-f]+$")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The latest time stored: SQLite's integers end at 2**63 - 1 (OTLP's fixed64 goes further).
MAX_NANOS = 2**63 - 1
#: How deep attribute values (arrays, key-value lists) may nest; the SDKs send flat ones.
MAX_VALUE_DEPTH = 16
#: How far ahead of the console's clock a span may start (another node's clock skew).
MAX_FUTURE_S = 300

T = TypeVar("T")
#: What reading a JSON document of the wrong shape raises (1e400 as an integer: OverflowError).
JSON_FAULTS = (ValueError, KeyError, TypeError, AttributeError, OverflowError)
M = TypeVar("M", bound=Message)


class MalformedExport(ValueError):
    """The body is not an OTLP trace export."""


class Rejected(ValueError):
    """One span (or log record) of an otherwise good export cannot be stored."""


@dataclass(frozen=True)
class SpanRecord:
    """One span as the console stores it: ids in lower-case hex, times in epoch nanos."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start: int
    end: int
    status: str
    status_message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedExport(Generic[T]):
    """The records (spans, log records) of one export that can be stored, and how many could
    not."""

    records: list[T]
    rejected: int = 0
    reason: str = ""  # why the first rejected record was rejected


def _json_safe(value: Any) -> Any:
    # NOTE: NaN and infinities are valid OTLP doubles but not JSON; the trace API must stay JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def checked_id(hex_id: str, length: int, what: str) -> str:
    if len(hex_id) != length or not _HEX.match(hex_id) or not hex_id.strip("0"):
        raise Rejected(f"{what} must be {length} hex digits, not all zero")
    return hex_id


def _checked_times(start: int, end: int) -> tuple[int, int]:
    if not (0 < start <= MAX_NANOS and 0 < end <= MAX_NANOS):
        raise Rejected("startTimeUnixNano and endTimeUnixNano must be positive nanoseconds")
    if start > time.time_ns() + MAX_FUTURE_S * 10**9:
        raise Rejected(f"the span starts more than {MAX_FUTURE_S} s in the future")
    return start, max(start, end)


def _deeper(depth: int) -> int:
    if depth >= MAX_VALUE_DEPTH:
        raise Rejected(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    return depth + 1


class Collector(Generic[T]):
    """Accumulates the records of one export and counts the rejected ones."""

    def __init__(self) -> None:
        self.records: list[T] = []
        self.rejected = 0
        self.reason = ""

    def add(self, make: Callable[[], T]) -> None:
        """Keep what ``make`` builds, or count it rejected when it raises :class:`Rejected`."""
        try:
            self.records.append(make())
        except Rejected as exc:
            self.rejected += 1
            self.reason = self.reason or str(exc)

    def result(self) -> DecodedExport[T]:
        return DecodedExport(self.records, self.rejected, self.reason)


# -- protobuf ------------------------------------------------------------------------------
def pb_value(value: AnyValue, depth: int = 0) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [pb_value(v, _deeper(depth)) for v in value.array_value.values]
    if which == "kvlist_value":
        return pb_attributes(value.kvlist_value.values, _deeper(depth))
    if which == "bytes_value":
        return value.bytes_value.hex()
    return _json_safe(getattr(value, which)) if which else None


def pb_attributes(pairs: Iterable[Any], depth: int = 0) -> dict[str, Any]:
    return {kv.key: pb_value(kv.value, depth) for kv in pairs}


def _pb_span(span: Span, service: str, resource: dict[str, Any]) -> SpanRecord:
    trace_id = checked_id(span.trace_id.hex(), 32, "traceId")
    span_id = checked_id(span.span_id.hex(), 16, "spanId")
    parent = span.parent_span_id.hex()
    start, end = _checked_times(span.start_time_unix_nano, span.end_time_unix_nano)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=checked_id(parent, 16, "parentSpanId") if parent else None,
        name=span.name,
        kind=KINDS.get(span.kind, "INTERNAL"),
        service=service,
        start=start,
        end=end,
        status=STATUSES.get(span.status.code, "UNSET"),
        status_message=span.status.message,
        attributes=pb_attributes(span.attributes),
        events=[
            {"name": e.name, "time": e.time_unix_nano, "attributes": pb_attributes(e.attributes)}
            for e in span.events
        ],
        resource=resource,
    )


def pb_request(request: M, body: bytes) -> M:
    """``request`` (an empty export message) read from ``body``.

    Raises:
        MalformedExport: the body is not such a message.
    """
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedExport(f"the body is not an OTLP {type(request).__name__}") from exc
    return request


def pb_resource(resource: Resource) -> tuple[dict[str, Any], str]:
    """A resource's attributes and the service it names.

    Raises:
        MalformedExport: its attributes cannot be read.
    """
    try:
        attributes = pb_attributes(resource.attributes)
    except Rejected as exc:
        raise MalformedExport(f"a resource cannot be read: {exc}") from exc
    return attributes, str(attributes.get("service.name") or UNKNOWN_SERVICE)


def decode_protobuf(body: bytes) -> DecodedExport[SpanRecord]:
    """Read an ``ExportTraceServiceRequest`` in protobuf binary form.

    Raises:
        MalformedExport: the body is not such a message.
    """
    request = pb_request(ExportTraceServiceRequest(), body)
    collector: Collector[SpanRecord] = Collector()
    for resource_spans in request.resource_spans:
        resource, service = pb_resource(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                collector.add(partial(_pb_span, span, service, resource))
    return collector.result()


# -- JSON ----------------------------------------------------------------------------------
def json_value(value: Mapping[str, Any], depth: int = 0) -> Any:
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return _json_safe(float(value["doubleValue"]))  # "NaN", "Infinity" arrive as strings
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"]).hex()  # as the protobuf path shows bytes
    if "arrayValue" in value:
        return [json_value(v, _deeper(depth)) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return json_attributes(value["kvlistValue"].get("values", []), _deeper(depth))
    if "stringValue" in value:
        if not isinstance(value["stringValue"], str):
            raise Rejected("a stringValue must be a string")
        return text(value["stringValue"])
    if "boolValue" in value:
        if not isinstance(value["boolValue"], bool):
            raise Rejected("a boolValue must be true or false")
        return value["boolValue"]
    return None


def json_attributes(pairs: Iterable[Mapping[str, Any]], depth: int = 0) -> dict[str, Any]:
    return {text(str(kv["key"])): json_value(kv.get("value") or {}, depth) for kv in pairs}


def text(value: str) -> str:
    """A JSON string as the store and the pages can hold it: a lone surrogate (``"\\ud800"``
    is valid JSON, and no UTF-8) becomes U+FFFD."""
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


def _json_enum(value: Any, names: dict[int, str], prefix: str, default: str) -> str:
    if isinstance(value, str) and not value.isdigit():
        name = value.removeprefix(prefix)
        return name if name in names.values() else default
    return names.get(int(value), default)


def json_nanos(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Rejected("times are nanoseconds as an integer or a string of digits")
    return int(value)


def _json_span(span: Any, service: str, resource: dict[str, Any]) -> SpanRecord:
    if not isinstance(span, dict):
        raise Rejected("a span must be an object")
    try:
        trace_id = checked_id(str(span.get("traceId", "")).lower(), 32, "traceId")
        span_id = checked_id(str(span.get("spanId", "")).lower(), 16, "spanId")
        parent = str(span.get("parentSpanId") or "").lower()
        start, end = _checked_times(
            json_nanos(span.get("startTimeUnixNano", 0)),
            json_nanos(span.get("endTimeUnixNano", 0)),
        )
        status = span.get("status") or {}
        return SpanRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=checked_id(parent, 16, "parentSpanId") if parent else None,
            name=text(str(span.get("name", ""))),
            kind=_json_enum(span.get("kind", 0), KINDS, "SPAN_KIND_", "INTERNAL"),
            service=service,
            start=start,
            end=end,
            status=_json_enum(status.get("code", 0), STATUSES, "STATUS_CODE_", "UNSET"),
            status_message=text(str(status.get("message", ""))),
            attributes=json_attributes(span.get("attributes", [])),
            events=[
                {
                    "name": text(str(e.get("name", ""))),
                    "time": json_nanos(e.get("timeUnixNano", 0)),
                    "attributes": json_attributes(e.get("attributes", [])),
                }
                for e in span.get("events", [])
            ],
            resource=resource,
        )
    except JSON_FAULTS as exc:
        if isinstance(exc, Rejected):
            raise
        raise Rejected(f"span is not OTLP/JSON: {exc!r}") from exc


def json_resource(resource: Any) -> tuple[dict[str, Any], str]:
    """An OTLP/JSON resource's attributes and the service it names."""
    attributes = json_attributes((resource or {}).get("attributes", []))
    return attributes, str(attributes.get("service.name") or UNKNOWN_SERVICE)


def json_document(body: bytes, read: Callable[[Any], None], what: str) -> None:
    """Parse an OTLP/JSON body and hand it to ``read``, turning every way it can be malformed
    into :class:`MalformedExport` (``what`` names the export in the message).

    Raises:
        MalformedExport: the body is not JSON, or not shaped like an export.
    """
    try:
        read(json.loads(body))
    except JSON_FAULTS as exc:
        raise MalformedExport(f"the body is not an OTLP/JSON {what} export: {exc}") from exc
    except RecursionError as exc:  # NOTE: json.loads itself, on "[[[[…" thousands deep
        raise MalformedExport("the body nests deeper than any OTLP export does") from exc


def decode_json(body: bytes) -> DecodedExport[SpanRecord]:
    """Read an ``ExportTraceServiceRequest`` in OTLP/JSON form.

    Raises:
        MalformedExport: the body is not JSON, or not shaped like an export.
    """
    collector: Collector[SpanRecord] = Collector()

    def read(document: Any) -> None:
        for resource_spans in document.get("resourceSpans") or []:
            resource, service = json_resource(resource_spans.get("resource"))
            for scope_spans in resource_spans.get("scopeSpans") or []:
                for span in scope_spans.get("spans") or []:
                    collector.add(partial(_json_span, span, service, resource))

    json_document(body, read, "trace")
    return collector.result()
