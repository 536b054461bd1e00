"""The ``traces`` summary table, kept up to date export by export.

The trace list reads one row per trace (root, extent, span count, services, error) instead of
grouping every stored span. Rebuilding a row means reading every stored span of its trace, and
an order's trace arrives in a dozen exports from six processes, so that was done a dozen times
per order, each time over more spans. Now an export's spans are merged into the rows they
touch: the extent, the services and the error widen, the count grows by the spans not stored
before, and the root stays — as long as the row's root is a parentless span and the export
brings no other parentless span. Otherwise (the root's parent may just have arrived, or a
second parentless span) the row is rebuilt from the stored spans, as before.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace

from ._otlp import SpanRecord
from ._summary import SpanOutline, TraceOutline, root_span, summarise_trace

CHUNK = 400  # ids per ``IN (...)``, well under SQLite's bound-parameter limit
#: what a row holds beyond the trace list's columns: who its root is
ROOT_COLUMNS = "root_span_id TEXT, root_parent_span_id TEXT"
_WRITTEN = (
    "trace_id, root_service, root_name, start_ns, end_ns, span_count, services, error, "
    "root_span_id, root_parent_span_id"
)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for offset in range(0, len(items), CHUNK):
        yield items[offset : offset + CHUNK]


def marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def stored_keys(
    connection: sqlite3.Connection, spans: Sequence[SpanRecord]
) -> set[tuple[str, str]]:
    """Which of ``spans`` are stored already (a span sent again)."""
    keys = list(dict.fromkeys((s.trace_id, s.span_id) for s in spans))
    found: set[tuple[str, str]] = set()
    for offset in range(0, len(keys), CHUNK // 2):
        part = keys[offset : offset + CHUNK // 2]
        found.update(
            connection.execute(
                "SELECT trace_id, span_id FROM spans WHERE (trace_id, span_id) IN "  # noqa: S608  # only placeholders vary
                f"(VALUES {','.join(['(?,?)'] * len(part))})",
                [value for key in part for value in key],
            ).fetchall()
        )
    return found


def _outline(span: SpanRecord) -> SpanOutline:
    return SpanOutline(
        span.span_id, span.parent_span_id, span.name, span.service, span.start, span.end,
        span.status,
    )  # fmt: skip


def merge(
    existing: TraceOutline, root: tuple[str, str | None], new: Sequence[SpanOutline], added: int
) -> TraceOutline | None:
    """``existing`` widened by the export's spans of its trace (``added`` of them not stored
    before); None when the root could change (the row must be rebuilt)."""
    root_id, root_parent = root
    if not root_id or root_parent is not None or any(s.parent_span_id is None for s in new):
        return None
    return replace(
        existing,
        start=min(existing.start, *(s.start for s in new)),
        end=max(existing.end, *(s.end for s in new)),
        span_count=existing.span_count + added,
        services=tuple(sorted({*existing.services, *(s.service for s in new)})),
        error=existing.error or any(s.status == "ERROR" for s in new),
    )


def refresh(
    connection: sqlite3.Connection, spans: Sequence[SpanRecord], stored: set[tuple[str, str]]
) -> None:
    """Bring the rows of the traces ``spans`` belong to up to date (``stored``: which of them
    were stored before this export)."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    rows: dict[str, tuple[TraceOutline, tuple[str, str | None]]] = {}
    for chunk in chunks(list(by_trace)):
        for row in connection.execute(
            f"SELECT {_WRITTEN} FROM traces WHERE trace_id IN ({marks(chunk)})",  # noqa: S608  # only placeholders vary
            chunk,
        ):
            trace_id, service, name, start, end, count, services, error, root_id, parent = row
            outline = TraceOutline(
                str(trace_id), str(service), str(name), int(start), int(end), int(count),
                tuple(json.loads(services)), bool(error),
            )  # fmt: skip
            rows[str(trace_id)] = (outline, (root_id or "", parent))
    written: list[tuple[TraceOutline, str, str | None]] = []
    rebuild: list[str] = []
    for trace_id, batch in by_trace.items():
        outlines = [_outline(s) for s in batch]
        unique = {o.span_id: o for o in outlines}
        added = sum(1 for sid in unique if (trace_id, sid) not in stored)
        if trace_id not in rows:
            if added < len(unique):  # NOTE: stored spans but no row (an older store): rebuild
                rebuild.append(trace_id)
                continue
            root = root_span(list(unique.values()))
            summary = summarise_trace(trace_id, list(unique.values()))
            written.append((summary, root.span_id, root.parent_span_id))
            continue
        existing, root_of = rows[trace_id]
        merged = merge(existing, root_of, list(unique.values()), added)
        if merged is None:
            rebuild.append(trace_id)
        else:
            written.append((merged, root_of[0], root_of[1]))
    _write(connection, written)
    rebuild_rows(connection, rebuild)


def rebuild_rows(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> None:
    """The rows of ``trace_ids`` rebuilt from every stored span of each."""
    for chunk in chunks(list(trace_ids)):
        outlines: dict[str, list[SpanOutline]] = defaultdict(list)
        for trace_id, *fields in connection.execute(
            "SELECT trace_id, span_id, parent_span_id, name, service, start_ns, end_ns, "  # noqa: S608  # only placeholders vary
            f"status FROM spans WHERE trace_id IN ({marks(chunk)})",
            chunk,
        ):
            outlines[trace_id].append(SpanOutline(*fields))
        written = []
        for trace_id, spans in outlines.items():
            root = root_span(spans)
            written.append((summarise_trace(trace_id, spans), root.span_id, root.parent_span_id))
        _write(connection, written)


def _write(
    connection: sqlite3.Connection, written: Sequence[tuple[TraceOutline, str, str | None]]
) -> None:
    if not written:
        return
    connection.executemany(
        f"INSERT OR REPLACE INTO traces ({_WRITTEN}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608  # fixed names
        [
            (t.trace_id, t.root_service, t.root_name, t.start, t.end, t.span_count,
             json.dumps(t.services), int(t.error), root_id, parent)
            for t, root_id, parent in written
        ],
    )  # fmt: skip
    connection.executemany(
        "INSERT OR REPLACE INTO trace_services VALUES (?,?,?)",
        [(t.trace_id, service, t.start) for t, _, _ in written for service in t.services],
    )
