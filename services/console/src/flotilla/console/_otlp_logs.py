"""Decoding OTLP/HTTP log exports (protobuf and JSON) into plain log lines.

Read as the trace exports are (:mod:`._otlp`): ids in hex, enums as numbers or names, 64-bit
integers as strings or numbers; a body that is not an export is :class:`MalformedExport`, and
a record that cannot be stored is rejected on its own (OTLP's partial success). A record
belongs to a trace when it carries a trace id; one logged outside any span has none (an empty
or all-zero id), and is kept all the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from ._otlp import (
    JSON_FAULTS,
    MAX_FUTURE_S,
    MAX_NANOS,
    Collector,
    DecodedExport,
    Rejected,
    checked_id,
    json_attributes,
    json_document,
    json_nanos,
    json_resource,
    json_value,
    pb_attributes,
    pb_request,
    pb_resource,
    pb_value,
    text,
)

#: The levels a page filters by: OTLP severity numbers 1-24 in six ranges of four.
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")


_SEVERITY_NAMES = frozenset(SeverityNumber.keys())
_TEXT_LEVELS = {"warning": "warn", "critical": "fatal", "err": "error"}


def level_of(severity_number: int, severity_text: str = "") -> str:
    """The level name of an OTLP severity number; without one, of its text (``WARNING``,
    ``error``…); ``info`` when neither says."""
    if 1 <= severity_number <= 24:
        return LEVELS[(severity_number - 1) // 4]
    text = severity_text.strip().lower()
    text = _TEXT_LEVELS.get(text, text)
    return text if text in LEVELS else "info"


@dataclass(frozen=True)
class LogLine:
    """One log record as the console stores it: ids in lower-case hex, time in epoch nanos."""

    time: int
    service: str
    severity_number: int
    level: str  # one of LEVELS, from the severity number
    body: str
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def _optional_id(hex_id: str, length: int, what: str) -> str | None:
    return checked_id(hex_id, length, what) if hex_id.strip("0") else None


def _record_time(time_ns: int, observed_ns: int) -> int:
    # NOTE: the record's own time, else when it was observed, else when it arrived here
    if not (0 <= time_ns <= MAX_NANOS and 0 <= observed_ns <= MAX_NANOS):
        raise Rejected("timeUnixNano and observedTimeUnixNano are nanoseconds, 0 or more")
    moment = time_ns or observed_ns or time.time_ns()
    if moment > time.time_ns() + MAX_FUTURE_S * 10**9:
        raise Rejected(f"the log record is more than {MAX_FUTURE_S} s in the future")
    return moment


def _body_text(value: Any) -> str:
    if value is None:  # no body
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _line(
    *,
    service: str,
    time_ns: int,
    severity: int,
    severity_text: str,
    body: Any,
    trace_id: str,
    span_id: str,
    attributes: dict[str, Any],
) -> LogLine:
    if not 0 <= severity <= 24:
        raise Rejected("severityNumber is 0 to 24")
    trace = _optional_id(trace_id, 32, "traceId")
    return LogLine(
        time=time_ns,
        service=service,
        severity_number=severity,
        level=level_of(severity, severity_text),
        body=_body_text(body),
        trace_id=trace,
        span_id=_optional_id(span_id, 16, "spanId") if trace else None,
        attributes=attributes,
    )


# -- protobuf ------------------------------------------------------------------------------
def _pb_line(record: LogRecord, service: str) -> LogLine:
    return _line(
        service=service,
        time_ns=_record_time(record.time_unix_nano, record.observed_time_unix_nano),
        severity=record.severity_number,
        severity_text=record.severity_text,
        body=pb_value(record.body),
        trace_id=record.trace_id.hex(),
        span_id=record.span_id.hex(),
        attributes=pb_attributes(record.attributes),
    )


def decode_logs_protobuf(body: bytes) -> DecodedExport[LogLine]:
    """Read an ``ExportLogsServiceRequest`` in protobuf binary form.

    Raises:
        MalformedExport: the body is not such a message.
    """
    request = pb_request(ExportLogsServiceRequest(), body)
    collector: Collector[LogLine] = Collector()
    for resource_logs in request.resource_logs:
        _, service = pb_resource(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                collector.add(partial(_pb_line, record, service))
    return collector.result()


# -- JSON ----------------------------------------------------------------------------------
def _json_line(record: Any, service: str) -> LogLine:
    if not isinstance(record, dict):
        raise Rejected("a log record must be an object")
    try:
        severity = record.get("severityNumber", 0)
        if isinstance(severity, bool) or not isinstance(severity, int | str):
            raise Rejected("severityNumber is a number (0 to 24)")
        if isinstance(severity, str) and not severity.isdigit():
            # NOTE: OTLP/JSON sends enums as numbers; some encoders send their names
            severity = SeverityNumber.Value(severity) if severity in _SEVERITY_NAMES else -1
        return _line(
            service=service,
            time_ns=_record_time(
                json_nanos(record.get("timeUnixNano", 0)),
                json_nanos(record.get("observedTimeUnixNano", 0)),
            ),
            severity=int(severity),
            severity_text=text(str(record.get("severityText") or "")),
            body=json_value(record.get("body") or {}),
            trace_id=str(record.get("traceId") or "").lower(),
            span_id=str(record.get("spanId") or "").lower(),
            attributes=json_attributes(record.get("attributes", [])),
        )
    except JSON_FAULTS as exc:
        if isinstance(exc, Rejected):
            raise
        raise Rejected(f"log record is not OTLP/JSON: {exc!r}") from exc


def decode_logs_json(body: bytes) -> DecodedExport[LogLine]:
    """Read an ``ExportLogsServiceRequest`` in OTLP/JSON form.

    Raises:
        MalformedExport: the body is not JSON, or not shaped like an export.
    """
    collector: Collector[LogLine] = Collector()

    def read(document: Any) -> None:
        for resource_logs in document.get("resourceLogs") or []:
            _, service = json_resource(resource_logs.get("resource"))
            for scope_logs in resource_logs.get("scopeLogs") or []:
                for record in scope_logs.get("logRecords") or []:
                    collector.add(partial(_json_line, record, service))

    json_document(body, read, "logs")
    return collector.result()
