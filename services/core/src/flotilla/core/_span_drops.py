"""Spans the batch processor drops when its queue is full, counted and said.

OpenTelemetry's ``BatchSpanProcessor`` keeps at most ``OTEL_BSP_MAX_QUEUE_SIZE`` (2,048) spans
waiting for export; past that, at saturation, it drops spans with one log line for the whole
life of the process, so a trace with holes looks like a trace. Here every drop is counted:
the processor is wrapped, a span it is handed while as many wait as its queue holds is a
drop, and its exporter is wrapped to know how many left the queue (public hooks only: the
queue itself is the SDK's). The count is the metric ``flotilla.telemetry.spans.dropped`` and,
every ``REPORT_EVERY_S`` while it grows, a warning log line carrying ``spans.dropped`` (the
new drops), which reaches the console beside the spans (its ``/services`` page sums them).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

REPORT_EVERY_S = 10.0
DROPPED_ATTRIBUTE = "spans.dropped"


class _Gauge:
    """How many spans wait in the queue, kept by the processor and the exporter together."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.waiting = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def admit(self) -> None:
        with self.lock:
            if self.waiting >= self.capacity:
                self.dropped += 1
            else:
                self.waiting += 1

    def leave(self, count: int) -> None:
        with self.lock:
            self.waiting = max(0, self.waiting - count)


class _CountingExporter(SpanExporter):
    def __init__(self, exporter: SpanExporter, gauge: _Gauge) -> None:
        self.exporter, self.gauge = exporter, gauge

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gauge.leave(len(spans))
        return self.exporter.export(spans)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class CountingBatchSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` for ``exporter`` whose drops are counted (``dropped``)."""

    def __init__(self, exporter: SpanExporter, **options: Any) -> None:
        capacity = int(
            options.get("max_queue_size") or os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 2048
        )
        self.gauge = _Gauge(capacity)
        self.processor = BatchSpanProcessor(_CountingExporter(exporter, self.gauge), **options)

    @property
    def dropped(self) -> int:
        return self.gauge.dropped

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self.gauge.admit()
        self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it untyped

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)


class DropReporter:
    """Says new drops every ``every_s`` seconds (a log line and the metric), from a thread."""

    def __init__(self, processors: list[CountingBatchSpanProcessor], every_s: float) -> None:
        from opentelemetry import metrics

        self.processors = processors
        self.reported = 0
        self.counter = metrics.get_meter("flotilla.core.telemetry").create_counter(
            "flotilla.telemetry.spans.dropped",
            unit="{span}",
            description="Spans the batch span processor dropped: its queue was full.",
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(every_s,), name="span-drops", daemon=True
        )
        self._thread.start()

    def report(self) -> int:
        """Say the drops since the last report now; how many there were."""
        total = sum(p.dropped for p in self.processors)
        new, self.reported = total - self.reported, total
        if new:
            self.counter.add(new)
            logger.warning(
                "spans dropped: the span exporter's queue was full",
                extra={DROPPED_ATTRIBUTE: new},
            )
        return new

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.report()

    def stop(self) -> None:
        self._stop.set()
        self.report()
