"""Which span names a trace in the list, however its spans arrive."""

from __future__ import annotations

import pytest

from flotilla.console import SpanOutline, root_span, summarise_trace

pytestmark = pytest.mark.unit

MS = 1_000_000


def outline(
    span_id: str, parent: str | None, start: int, *, end: int = 0, status: str = "UNSET"
) -> SpanOutline:
    return SpanOutline(
        span_id, parent, f"op {span_id}", f"svc-{span_id}", start, end or start + 10, status
    )


def test_the_parentless_span_is_the_root_even_if_it_started_later() -> None:
    assert root_span([outline("b", "a", 1), outline("a", None, 2)]).span_id == "a"


def test_a_trace_continued_from_an_outside_caller_is_rooted_at_its_first_orphan() -> None:
    """The edge continues a client's traceparent: no stored span is parentless."""
    spans = [outline("c", "b", 3), outline("b", "client", 2), outline("x", "lost", 5)]
    assert root_span(spans).span_id == "b"


def test_a_cycle_of_known_parents_falls_back_to_the_earliest_span() -> None:
    assert root_span([outline("a", "b", 4), outline("b", "a", 3)]).span_id == "b"


def test_the_summary_spans_every_service_and_notices_an_error() -> None:
    summary = summarise_trace(
        "t",
        [
            outline("a", None, 100 * MS, end=150 * MS),
            outline("b", "a", 120 * MS, end=162_500_001, status="ERROR"),
        ],
    )
    assert (summary.start, summary.end, summary.span_count) == (100 * MS, 162_500_001, 2)
    assert summary.services == ("svc-a", "svc-b") and summary.error
    assert summary.duration_ms == 62.5  # from the first start to the last end, in ms


def test_a_trace_without_spans_has_no_summary() -> None:
    with pytest.raises(ValueError, match="at least one span"):
        summarise_trace("t", [])
