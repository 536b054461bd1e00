"""The console's HTTP answers (docs/contracts.md, "console"), as pydantic models.

Times are Unix epoch nanoseconds as integers, ids are lower-case hex.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from ._otlp import SpanRecord
from ._otlp_logs import LogLine
from ._summary import TraceOutline

#: A trace id as the API and the pages accept it: 32 hex digits (stored lower-case).
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")

SpanKind = Literal["SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL"]
SpanStatus = Literal["UNSET", "OK", "ERROR"]
LogLevel = Literal["trace", "debug", "info", "warn", "error", "fatal"]


class TraceSummary(BaseModel):
    """One line of the trace list."""

    trace_id: str
    root_service: str
    root_name: str
    start: int = Field(description="the first span's start, Unix epoch nanoseconds")
    duration_ms: float
    span_count: int
    services: list[str]
    error: bool = Field(description="whether any span has status ERROR")

    @classmethod
    def of(cls, outline: TraceOutline) -> TraceSummary:
        """The answer for one stored trace summary."""
        return cls(
            trace_id=outline.trace_id,
            root_service=outline.root_service,
            root_name=outline.root_name,
            start=outline.start,
            duration_ms=outline.duration_ms,
            span_count=outline.span_count,
            services=list(outline.services),
            error=outline.error,
        )


class TraceList(BaseModel):
    """``GET /api/traces``: newest first."""

    traces: list[TraceSummary]


class SpanEvent(BaseModel):
    """Something that happened during a span (an exception, a retry…)."""

    name: str
    time: int = Field(description="Unix epoch nanoseconds")
    attributes: dict[str, Any]


class SpanView(BaseModel):
    """One span of a trace."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    service: str
    start: int = Field(description="Unix epoch nanoseconds")
    end: int = Field(description="Unix epoch nanoseconds")
    status: SpanStatus
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]

    @classmethod
    def of(cls, span: SpanRecord) -> SpanView:
        """The answer for one stored span."""
        return cls(
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            name=span.name,
            kind=span.kind,  # type: ignore[arg-type]  # the decoder only produces valid kinds
            service=span.service,
            start=span.start,
            end=span.end,
            status=span.status,  # type: ignore[arg-type]  # likewise for statuses
            status_message=span.status_message,
            attributes=span.attributes,
            events=[SpanEvent(**event) for event in span.events],
        )


class LogView(BaseModel):
    """One log record of a trace."""

    time: int = Field(description="Unix epoch nanoseconds")
    service: str
    level: LogLevel = Field(description="from the OTLP severity number (or text)")
    severity_number: int = Field(description="OTLP severity number, 0 when none was sent")
    body: str = Field(description="the message; a structured body as JSON")
    span_id: str | None = Field(description="the span it was logged in, if any")
    attributes: dict[str, Any]

    @classmethod
    def of(cls, line: LogLine) -> LogView:
        """The answer for one stored log record."""
        return cls(
            time=line.time,
            service=line.service,
            level=line.level,  # type: ignore[arg-type]  # the decoder only produces LEVELS
            severity_number=line.severity_number,
            body=line.body,
            span_id=line.span_id,
            attributes=line.attributes,
        )


class TraceDetail(BaseModel):
    """``GET /api/traces/{trace_id}``: every stored span, by start time, and the trace's log
    records (at the level asked for or above), by time."""

    trace_id: str
    spans: list[SpanView]
    logs: list[LogView]
    logs_truncated: bool = Field(description="whether the trace has more log lines than these")
