"""What a trace list shows of one trace: its root, extent, services and whether it failed.

Kept apart from storage because the root is a judgement: spans arrive out of order and from
many processes, and a trace continued from an outside caller has no parentless span at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpanOutline:
    """The few fields of a span that a trace summary depends on."""

    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start: int
    end: int
    status: str


@dataclass(frozen=True)
class TraceOutline:
    """One trace as the trace list shows it."""

    trace_id: str
    root_service: str
    root_name: str
    start: int
    end: int
    span_count: int
    services: tuple[str, ...]
    error: bool

    @property
    def duration_ms(self) -> float:
        """From the first span's start to the last span's end, in milliseconds."""
        return round((self.end - self.start) / 1e6, 3)


def root_span(spans: Sequence[SpanOutline]) -> SpanOutline:
    """The span a trace is named after.

    The earliest span without a parent; else the earliest whose parent is not stored (the
    trace was continued from a caller that does not export here, or the parent is still on its
    way); else the earliest span.

    Raises:
        ValueError: ``spans`` is empty.
    """
    if not spans:
        raise ValueError("a trace has at least one span")
    known = {s.span_id for s in spans}

    def rank(span: SpanOutline) -> tuple[int, int, str]:
        if span.parent_span_id is None:
            tier = 0
        elif span.parent_span_id not in known:
            tier = 1
        else:
            tier = 2
        return (tier, span.start, span.span_id)

    return min(spans, key=rank)


def summarise_trace(trace_id: str, spans: Sequence[SpanOutline]) -> TraceOutline:
    """The summary of one trace from all of its stored spans.

    Raises:
        ValueError: ``spans`` is empty.
    """
    root = root_span(spans)
    return TraceOutline(
        trace_id=trace_id,
        root_service=root.service,
        root_name=root.name,
        start=min(s.start for s in spans),
        end=max(s.end for s in spans),
        span_count=len(spans),
        services=tuple(sorted({s.service for s in spans})),
        error=any(s.status == "ERROR" for s in spans),
    )
