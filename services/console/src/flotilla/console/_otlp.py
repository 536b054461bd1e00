"""Decoding OTLP/HTTP trace exports (protobuf and JSON) into plain span records.

OTLP/JSON differs from protobuf's canonical JSON mapping: trace and span ids are hex, not
base64, and enums may be numbers; so JSON is read by hand rather than with ``json_format``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}


class MalformedExport(ValueError):
    """The body is not an OTLP trace export."""


@dataclass(frozen=True)
class SpanRecord:
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
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]


# -- protobuf ------------------------------------------------------------------------------
def _pb_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which) if which else None


def _pb_attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def decode_protobuf(body: bytes) -> list[SpanRecord]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedExport("the body is not an OTLP ExportTraceServiceRequest") from exc
    records = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=KINDS.get(span.kind, "INTERNAL"),
                        service=service,
                        start=span.start_time_unix_nano,
                        end=span.end_time_unix_nano,
                        status=STATUSES.get(span.status.code, "UNSET"),
                        status_message=span.status.message,
                        attributes=_pb_attributes(span.attributes),
                        events=[
                            {
                                "name": e.name,
                                "time": e.time_unix_nano,
                                "attributes": _pb_attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                        resource=resource,
                    )
                )
    return records


# -- JSON ----------------------------------------------------------------------------------
def _json_value(value: dict[str, Any]) -> Any:
    for key, item in value.items():
        if key == "intValue":
            return int(item)
        if key == "arrayValue":
            return [_json_value(v) for v in item.get("values", [])]
        if key == "kvlistValue":
            return _json_attributes(item.get("values", []))
        return item
    return None


def _json_attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _json_value(kv.get("value", {})) for kv in pairs}


def _enum(value: Any, names: dict[int, str], prefix: str) -> str:
    if isinstance(value, str) and not value.isdigit():
        return (
            value.removeprefix(prefix)
            if value.removeprefix(prefix) in names.values()
            else ("INTERNAL" if prefix == "SPAN_KIND_" else "UNSET")
        )
    return names.get(int(value or 0), next(iter(names.values())))


def decode_json(body: bytes) -> list[SpanRecord]:
    try:
        document = json.loads(body)
        records = []
        for resource_spans in document.get("resourceSpans", []):
            resource = _json_attributes(resource_spans.get("resource", {}).get("attributes", []))
            service = str(resource.get("service.name", "unknown"))
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    status = span.get("status", {})
                    records.append(
                        SpanRecord(
                            trace_id=span["traceId"].lower(),
                            span_id=span["spanId"].lower(),
                            parent_span_id=(span.get("parentSpanId") or "").lower() or None,
                            name=span.get("name", ""),
                            kind=_enum(span.get("kind", 0), KINDS, "SPAN_KIND_"),
                            service=service,
                            start=int(span["startTimeUnixNano"]),
                            end=int(span["endTimeUnixNano"]),
                            status=_enum(status.get("code", 0), STATUSES, "STATUS_CODE_"),
                            status_message=status.get("message", ""),
                            attributes=_json_attributes(span.get("attributes", [])),
                            events=[
                                {
                                    "name": e.get("name", ""),
                                    "time": int(e.get("timeUnixNano", 0)),
                                    "attributes": _json_attributes(e.get("attributes", [])),
                                }
                                for e in span.get("events", [])
                            ],
                            resource=resource,
                        )
                    )
        return records
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedExport(f"the body is not OTLP/JSON: {exc}") from exc
