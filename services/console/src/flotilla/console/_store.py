"""The console's span store: SQLite (WAL), one connection per thread, bounded retention."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ._otlp import SpanRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, kind TEXT NOT NULL, service TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status TEXT NOT NULL, status_message TEXT NOT NULL,
    attributes TEXT NOT NULL, events TEXT NOT NULL, resource TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_service ON spans (service, start_ns);
"""
PRUNE_EVERY = 50  # exports between two retention passes (pruning costs a scan)


class SpanStore:
    """Stores spans and answers trace queries."""

    def __init__(self, path: str, *, max_spans: int, max_age_s: int) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_spans, self.max_age_s = path, max_spans, max_age_s
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._exports = 0
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def add(self, records: list[SpanRecord]) -> None:
        """Store one export's spans in one transaction; a re-sent span replaces itself."""
        rows = [
            (
                r.trace_id,
                r.span_id,
                r.parent_span_id,
                r.name,
                r.kind,
                r.service,
                r.start,
                r.end,
                r.status,
                r.status_message,
                json.dumps(r.attributes, default=str),
                json.dumps(r.events, default=str),
                json.dumps(r.resource, default=str),
            )
            for r in records
        ]
        connection = self._connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            connection.execute("COMMIT")
            self._exports += 1
            if self._exports % PRUNE_EVERY == 0:
                self.prune()

    def prune(self, now_ns: int | None = None) -> None:
        """Drop whole traces that are too old or beyond the span budget, oldest first."""
        now_ns = now_ns or time.time_ns()
        connection = self._connection()
        cutoff = now_ns - self.max_age_s * 1_000_000_000
        row = connection.execute(
            "SELECT start_ns FROM spans ORDER BY start_ns DESC LIMIT 1 OFFSET ?",
            (self.max_spans,),
        ).fetchone()
        if row is not None:
            cutoff = max(cutoff, int(row[0]) + 1)
        connection.execute(
            "DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM spans "
            "GROUP BY trace_id HAVING MIN(start_ns) < ?)",
            (cutoff,),
        )

    def count(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM spans").fetchone()[0])

    def recent_traces(self, *, service: str | None, limit: int) -> list[dict[str, Any]]:
        """Summaries of the newest traces, optionally only those touching ``service``."""
        where, params = "", []
        if service:
            where = "WHERE trace_id IN (SELECT trace_id FROM spans WHERE service = ?)"
            params.append(service)
        connection = self._connection()
        summaries = connection.execute(
            f"SELECT trace_id, MIN(start_ns), MAX(end_ns), COUNT(*), "  # noqa: S608  # only placeholders vary
            f"GROUP_CONCAT(DISTINCT service), MAX(status = 'ERROR') FROM spans {where} "
            f"GROUP BY trace_id ORDER BY MIN(start_ns) DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        traces = []
        for trace_id, start, end, count, services, error in summaries:
            root = connection.execute(
                "SELECT service, name FROM spans WHERE trace_id = ? "
                "ORDER BY (parent_span_id IS NOT NULL), start_ns LIMIT 1",
                (trace_id,),
            ).fetchone()
            traces.append(
                {
                    "trace_id": trace_id,
                    "root_service": root[0],
                    "root_name": root[1],
                    "start": start,
                    "duration_ms": round((end - start) / 1e6, 3),
                    "span_count": count,
                    "services": sorted(services.split(",")),
                    "error": bool(error),
                }
            )
        return traces

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every stored span of one trace, by start time."""
        rows = (
            self._connection()
            .execute(
                "SELECT span_id, parent_span_id, name, kind, service, start_ns, end_ns, "
                "status, status_message, attributes, events FROM spans WHERE trace_id = ? "
                "ORDER BY start_ns",
                (trace_id,),
            )
            .fetchall()
        )
        return [
            {
                "span_id": r[0],
                "parent_span_id": r[1],
                "name": r[2],
                "kind": r[3],
                "service": r[4],
                "start": r[5],
                "end": r[6],
                "status": r[7],
                "status_message": r[8],
                "attributes": json.loads(r[9]),
                "events": json.loads(r[10]),
            }
            for r in rows
        ]
