"""A trace as a waterfall: rows in tree order on a shared time axis (pure, no HTML).

Spans arrive from many processes and out of order, so the tree is built from what is stored:
a span whose parent is not stored is drawn as a root. Iterative, so a deep trace cannot hit
the recursion limit; one pass over the spans, so 1,000 spans cost milliseconds.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from .._otlp import SpanRecord
from .._otlp_logs import LogLine

QUEUE_WAIT = "messaging.dramatiq.queue_wait_ms"
QUEUE_NAME = "messaging.destination.name"


@dataclass(frozen=True)
class Row:
    """One span's row: its place in the tree and its bar, in percent of the trace's extent."""

    kind: ClassVar[str] = "span"
    span: SpanRecord
    depth: int
    left: float
    width: float
    duration_ms: float
    error: bool
    wait_left: float | None = None  # the queue wait before a CONSUMER span, if recorded
    wait_width: float | None = None
    wait_ms: float | None = None
    queue: str | None = None

    @property
    def attributes(self) -> list[tuple[str, Any]]:
        return sorted(self.span.attributes.items())


#: Log attributes shown apart from the inline ``key=value`` list (a stack trace is long).
STACKTRACE = "exception.stacktrace"


@dataclass(frozen=True)
class LogMark:
    """One log line under the span it was logged in: its mark on the time axis (percent)."""

    kind: ClassVar[str] = "log"
    line: LogLine
    depth: int
    left: float
    offset_ms: float  # since the trace's start

    @property
    def attributes(self) -> list[tuple[str, Any]]:
        return sorted((k, v) for k, v in self.line.attributes.items() if k != STACKTRACE)

    @property
    def stacktrace(self) -> str | None:
        value = self.line.attributes.get(STACKTRACE)
        return str(value) if value else None


@dataclass(frozen=True)
class Waterfall:
    rows: list[Row]
    start: int  # epoch ns
    duration_ms: float
    services: list[str]  # in order of first appearance
    ticks: list[tuple[float, str]]  # (percent, label)
    errors: int


def _ms(ns: float) -> float:
    return ns / 1_000_000


def _label(ms: float) -> str:
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms" if ms >= 1 else f"{ms * 1000:.0f} µs"


def build(spans: list[SpanRecord]) -> Waterfall:
    """The waterfall of a trace's spans (at least one)."""
    start = min(s.start for s in spans)
    end = max(s.end for s in spans)
    extent = max(end - start, 1)
    stored = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in stored else None
        children[parent].append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.start, s.span_id))

    rows: list[Row] = []
    stack = [(root, 0) for root in reversed(children[None])]
    while stack:
        span, depth = stack.pop()
        rows.append(_row(span, depth, start, extent))
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))

    services = list(dict.fromkeys(row.span.service for row in rows))
    total = _ms(extent)
    ticks = [(float(pct), _label(total * pct / 100)) for pct in (0, 25, 50, 75, 100)]
    errors = sum(row.error for row in rows)
    return Waterfall(rows, start, round(total, 3), services, ticks, errors)


def _row(span: SpanRecord, depth: int, start: int, extent: int) -> Row:
    left = (span.start - start) / extent * 100
    width = max((span.end - span.start) / extent * 100, 0.2)  # a zero-length span stays visible
    row = Row(
        span=span,
        depth=depth,
        left=round(left, 3),
        width=round(min(width, 100 - left), 3) if left < 100 else 0.2,
        duration_ms=round(_ms(span.end - span.start), 3),
        error=span.status == "ERROR",
    )
    wait = span.attributes.get(QUEUE_WAIT)
    if span.kind != "CONSUMER" or not isinstance(wait, int | float) or wait <= 0:
        return row
    wait_start = max(span.start - wait * 1_000_000, start)
    wait_left = (wait_start - start) / extent * 100
    return replace(
        row,
        wait_left=round(wait_left, 3),
        wait_width=round(max(left - wait_left, 0.2), 3),
        wait_ms=round(float(wait), 3),
        queue=str(span.attributes.get(QUEUE_NAME, "")) or None,
    )


def with_logs(w: Waterfall, logs: list[LogLine]) -> tuple[list[Row | LogMark], list[LogMark]]:
    """The waterfall's rows with each log line under the span it was logged in, one level
    deeper, in time order among that span's children (a line logged before a child started
    comes before the child's row); and the lines whose span is not stored (depth 0, in order).

    Args:
        w: the trace's waterfall.
        logs: its log lines in time order.
    """
    extent_ns = max(w.duration_ms * 1_000_000, 1)

    def mark(line: LogLine, depth: int) -> LogMark:
        left = min(max((line.time - w.start) / extent_ns * 100, 0.0), 100.0)
        return LogMark(line, depth, round(left, 3), round(_ms(line.time - w.start), 3))

    by_span: dict[str | None, deque[LogLine]] = defaultdict(deque)
    for line in logs:
        by_span[line.span_id].append(line)
    entries: list[Row | LogMark] = []

    def flush(row: Row, before: float = float("inf")) -> None:
        pending = by_span.get(row.span.span_id)
        while pending and pending[0].time < before:
            entries.append(mark(pending.popleft(), row.depth + 1))

    # NOTE: rows come in tree order; a span's subtree ends where a row no deeper follows
    open_rows: list[Row] = []
    for row in w.rows:
        while open_rows and open_rows[-1].depth >= row.depth:
            flush(open_rows.pop())
        if open_rows:
            flush(open_rows[-1], before=row.span.start)
        entries.append(row)
        open_rows.append(row)
    while open_rows:
        flush(open_rows.pop())
    for row in w.rows:
        by_span.pop(row.span.span_id, None)
    unplaced = sorted((line for lines in by_span.values() for line in lines), key=_time)
    return entries, [mark(line, 0) for line in unplaced]


def _time(line: LogLine) -> int:
    return line.time
