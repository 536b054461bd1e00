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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

#: OTLP ``SpanKind`` numbers; UNSPECIFIED (0) reads as INTERNAL, the API's default kind.
KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
#: OTLP ``Status.StatusCode`` numbers.
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}
UNKNOWN_SERVICE = "unknown_service"  # what the SDKs call a process that names no service

_HEX = re.compile(r"^[0-9a-f]+$")
_MAX_NANOS = 2**64 - 1
#: How deep attribute values (arrays, key-value lists) may nest; the SDKs send flat ones.
MAX_VALUE_DEPTH = 16
#: How far ahead of the console's clock a span may start (another node's clock skew).
MAX_FUTURE_S = 300


class MalformedExport(ValueError):
    """The body is not an OTLP trace export."""


class _RejectedSpan(ValueError):
    """One span of an otherwise good export cannot be stored."""


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
class DecodedExport:
    """The spans of one export that can be stored, and how many could not."""

    spans: list[SpanRecord]
    rejected: int = 0
    reason: str = ""  # why the first rejected span was rejected


def _json_safe(value: Any) -> Any:
    # NOTE: NaN and infinities are valid OTLP doubles but not JSON; the trace API must stay JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _checked_id(hex_id: str, length: int, what: str) -> str:
    if len(hex_id) != length or not _HEX.match(hex_id) or not hex_id.strip("0"):
        raise _RejectedSpan(f"{what} must be {length} hex digits, not all zero")
    return hex_id


def _checked_times(start: int, end: int) -> tuple[int, int]:
    if not (0 < start <= _MAX_NANOS and 0 < end <= _MAX_NANOS):
        raise _RejectedSpan("startTimeUnixNano and endTimeUnixNano must be positive nanoseconds")
    if start > time.time_ns() + MAX_FUTURE_S * 10**9:
        raise _RejectedSpan(f"the span starts more than {MAX_FUTURE_S} s in the future")
    return start, max(start, end)


def _deeper(depth: int) -> int:
    if depth >= MAX_VALUE_DEPTH:
        raise _RejectedSpan(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    return depth + 1


class _Collector:
    """Accumulates the spans of one export and counts the rejected ones."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self.rejected = 0
        self.reason = ""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reason = self.reason or reason

    def result(self) -> DecodedExport:
        return DecodedExport(self.spans, self.rejected, self.reason)


# -- protobuf ------------------------------------------------------------------------------
def _pb_value(value: AnyValue, depth: int = 0) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_pb_value(v, _deeper(depth)) for v in value.array_value.values]
    if which == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values, _deeper(depth))
    if which == "bytes_value":
        return value.bytes_value.hex()
    return _json_safe(getattr(value, which)) if which else None


def _pb_attributes(pairs: Iterable[Any], depth: int = 0) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value, depth) for kv in pairs}


def _pb_span(span: Span, service: str, resource: dict[str, Any]) -> SpanRecord:
    trace_id = _checked_id(span.trace_id.hex(), 32, "traceId")
    span_id = _checked_id(span.span_id.hex(), 16, "spanId")
    parent = span.parent_span_id.hex()
    start, end = _checked_times(span.start_time_unix_nano, span.end_time_unix_nano)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_checked_id(parent, 16, "parentSpanId") if parent else None,
        name=span.name,
        kind=KINDS.get(span.kind, "INTERNAL"),
        service=service,
        start=start,
        end=end,
        status=STATUSES.get(span.status.code, "UNSET"),
        status_message=span.status.message,
        attributes=_pb_attributes(span.attributes),
        events=[
            {"name": e.name, "time": e.time_unix_nano, "attributes": _pb_attributes(e.attributes)}
            for e in span.events
        ],
        resource=resource,
    )


def decode_protobuf(body: bytes) -> DecodedExport:
    """Read an ``ExportTraceServiceRequest`` in protobuf binary form.

    Raises:
        MalformedExport: the body is not such a message.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedExport("the body is not an OTLP ExportTraceServiceRequest") from exc
    collector = _Collector()
    for resource_spans in request.resource_spans:
        try:
            resource = _pb_attributes(resource_spans.resource.attributes)
        except _RejectedSpan as exc:
            raise MalformedExport(f"a resource cannot be read: {exc}") from exc
        service = str(resource.get("service.name") or UNKNOWN_SERVICE)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    collector.spans.append(_pb_span(span, service, resource))
                except _RejectedSpan as exc:
                    collector.reject(str(exc))
    return collector.result()


# -- JSON ----------------------------------------------------------------------------------
def _json_value(value: Mapping[str, Any], depth: int = 0) -> Any:
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return _json_safe(float(value["doubleValue"]))  # "NaN", "Infinity" arrive as strings
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"]).hex()  # as the protobuf path shows bytes
    if "arrayValue" in value:
        return [_json_value(v, _deeper(depth)) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _json_attributes(value["kvlistValue"].get("values", []), _deeper(depth))
    for key in ("stringValue", "boolValue"):
        if key in value:
            return value[key]
    return None


def _json_attributes(pairs: Iterable[Mapping[str, Any]], depth: int = 0) -> dict[str, Any]:
    return {str(kv["key"]): _json_value(kv.get("value") or {}, depth) for kv in pairs}


def _json_enum(value: Any, names: dict[int, str], prefix: str, default: str) -> str:
    if isinstance(value, str) and not value.isdigit():
        name = value.removeprefix(prefix)
        return name if name in names.values() else default
    return names.get(int(value), default)


def _json_nanos(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _RejectedSpan("times are nanoseconds as an integer or a string of digits")
    return int(value)


def _json_span(span: Any, service: str, resource: dict[str, Any]) -> SpanRecord:
    if not isinstance(span, dict):
        raise _RejectedSpan("a span must be an object")
    try:
        trace_id = _checked_id(str(span.get("traceId", "")).lower(), 32, "traceId")
        span_id = _checked_id(str(span.get("spanId", "")).lower(), 16, "spanId")
        parent = str(span.get("parentSpanId") or "").lower()
        start, end = _checked_times(
            _json_nanos(span.get("startTimeUnixNano", 0)),
            _json_nanos(span.get("endTimeUnixNano", 0)),
        )
        status = span.get("status") or {}
        return SpanRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=_checked_id(parent, 16, "parentSpanId") if parent else None,
            name=str(span.get("name", "")),
            kind=_json_enum(span.get("kind", 0), KINDS, "SPAN_KIND_", "INTERNAL"),
            service=service,
            start=start,
            end=end,
            status=_json_enum(status.get("code", 0), STATUSES, "STATUS_CODE_", "UNSET"),
            status_message=str(status.get("message", "")),
            attributes=_json_attributes(span.get("attributes", [])),
            events=[
                {
                    "name": str(e.get("name", "")),
                    "time": _json_nanos(e.get("timeUnixNano", 0)),
                    "attributes": _json_attributes(e.get("attributes", [])),
                }
                for e in span.get("events", [])
            ],
            resource=resource,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, _RejectedSpan):
            raise
        raise _RejectedSpan(f"span is not OTLP/JSON: {exc!r}") from exc


def decode_json(body: bytes) -> DecodedExport:
    """Read an ``ExportTraceServiceRequest`` in OTLP/JSON form.

    Raises:
        MalformedExport: the body is not JSON, or not shaped like an export.
    """
    collector = _Collector()
    try:
        document = json.loads(body)
        for resource_spans in document.get("resourceSpans") or []:
            resource = _json_attributes(
                (resource_spans.get("resource") or {}).get("attributes", [])
            )
            service = str(resource.get("service.name") or UNKNOWN_SERVICE)
            for scope_spans in resource_spans.get("scopeSpans") or []:
                for span in scope_spans.get("spans") or []:
                    try:
                        collector.spans.append(_json_span(span, service, resource))
                    except _RejectedSpan as exc:
                        collector.reject(str(exc))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedExport(f"the body is not an OTLP/JSON trace export: {exc}") from exc
    except RecursionError as exc:  # NOTE: json.loads itself, on "[[[[…" thousands deep
        raise MalformedExport("the body nests deeper than any OTLP export does") from exc
    return collector.result()
