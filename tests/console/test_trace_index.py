"""The trace list's rows are merged export by export, and read the same as if every span had
come at once (the console used to re-read a whole trace's spans on each export touching it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.console import SpanOutline, summarise_trace
from flotilla.console._otlp import SpanRecord
from flotilla.console._store import SpanStore

pytestmark = pytest.mark.unit

T = "ab" * 16
MS = 1_000_000


def span(
    span_id: str, parent: str | None, start_ms: int, service: str, status: str = "UNSET"
) -> SpanRecord:
    return SpanRecord(
        T, span_id * 8, parent * 8 if parent else None, f"op {span_id}", "INTERNAL", service,
        start_ms * MS, (start_ms + 5) * MS, status, "",
    )  # fmt: skip


ROOT = span("a", None, 100, "edge")
API = span("b", "a", 101, "orders-api")
WORKER = span("c", "b", 110, "orders-worker", status="ERROR")
MAIL = span("d", "c", 120, "notifications-worker")


def everything_at_once(spans: list[SpanRecord]) -> object:
    unique = {s.span_id: s for s in spans}.values()
    outlines = [
        SpanOutline(s.span_id, s.parent_span_id, s.name, s.service, s.start, s.end, s.status)
        for s in unique
    ]
    return summarise_trace(T, outlines)


def stored(tmp_path: Path, *exports: list[SpanRecord]) -> tuple[SpanStore, object]:
    store = SpanStore(str(tmp_path / "console.db"), max_spans=10_000, max_age_s=3600)
    for export in exports:
        store.add_spans(spans=export)
    (row,) = store.recent_traces(trace_id=T)
    return store, row


def test_a_trace_in_many_exports_with_a_span_sent_twice_reads_as_if_it_came_at_once(
    tmp_path: Path,
) -> None:
    store, row = stored(tmp_path, [ROOT], [API], [WORKER, API], [MAIL])
    assert row == everything_at_once([ROOT, API, WORKER, MAIL])
    assert row.span_count == 4 and row.error and row.root_name == "op a"  # type: ignore[attr-defined]
    store.close()


def test_children_before_their_root_still_name_the_trace_after_the_root(tmp_path: Path) -> None:
    store, row = stored(tmp_path, [MAIL], [WORKER, API], [ROOT])
    assert row == everything_at_once([ROOT, API, WORKER, MAIL])
    assert row.root_service == "edge"  # type: ignore[attr-defined]
    store.close()


def test_once_the_root_is_stored_an_export_merges_without_reading_the_trace_again(
    tmp_path: Path,
) -> None:
    store, _ = stored(tmp_path, [ROOT, API])
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    store.add_spans(spans=[WORKER])
    store.add_spans(spans=[MAIL])
    store._connection().set_trace_callback(None)
    reads_of_spans = [s for s in statements if "FROM spans WHERE trace_id IN" in s]
    assert reads_of_spans == []
    (row,) = store.recent_traces(trace_id=T)
    assert row == everything_at_once([ROOT, API, WORKER, MAIL])
    store.close()
