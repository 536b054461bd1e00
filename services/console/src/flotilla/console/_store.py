"""The console's span and log store: SQLite in WAL mode, one writer, bounded retention.

Every process of the platform exports here during a load test, so the hot paths are shaped
for that: one export is one transaction; the trace list reads a ``traces`` summary table
(refreshed for the traces an export touched) instead of grouping every stored span; and
retention runs every few exports rather than on each. Log records are kept beside the spans,
found by trace id, under a budget of their own. Readers never wait for the writer
(WAL); writers are serialised by a lock in-process and ``BEGIN IMMEDIATE`` across processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from . import _decisions, _performance, _trace_index
from ._decisions import Decision, PoolView
from ._otlp import SpanRecord
from ._otlp_logs import LEVELS, LogLine
from ._performance import Performance
from ._store_schema import chunks, marks, migrate
from ._summary import TraceOutline

PRUNE_EVERY_EXPORTS = 50
#: The most log lines a trace's page and answer carry (they say when there were more).
MAX_TRACE_LOGS = 2000
_SPAN_COLUMNS = (
    "span_id, parent_span_id, name, kind, service, start_ns, end_ns, status, status_message, "
    "attributes, events"
)
_TRACE_FIELDS = (
    "trace_id",
    "root_service",
    "root_name",
    "start_ns",
    "end_ns",
    "span_count",
    "services",
    "error",
)
_TRACE_COLUMNS = ", ".join(_TRACE_FIELDS)
_TRACE_COLUMNS_OF_T = ", ".join(f"t.{name}" for name in _TRACE_FIELDS)


def _trace_outline(row: Sequence[object]) -> TraceOutline:
    trace_id, root_service, root_name, start, end, count, services, error = row
    return TraceOutline(
        trace_id=str(trace_id),
        root_service=str(root_service),
        root_name=str(root_name),
        start=int(str(start)),
        end=int(str(end)),
        span_count=int(str(count)),
        services=tuple(json.loads(str(services))),
        error=bool(error),
    )


class SpanStore:
    """Stores spans and answers trace queries.

    Args:
        path: the SQLite file (its folder is created) or ``:memory:``.
        max_spans: how many spans to keep at most; the oldest traces go first.
        max_age_s: how old (by start) a trace, or a log record, may get before it goes.
        max_logs: how many log records to keep at most; the first received go first
            (``None``: as many as spans).
    """

    def __init__(
        self, path: str, *, max_spans: int, max_age_s: int, max_logs: int | None = None
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_spans, self.max_age_s = path, max_spans, max_age_s
        self.max_logs = max_spans if max_logs is None else max_logs
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # NOTE: a retention pass walks an index, so it runs every few exports, or sooner
        # when many records arrived, to keep the overshoot within a tenth of a budget.
        self._prune_after_records = max(1, min(max_spans, self.max_logs) // 10)
        self._exports_since_prune = 0
        self._records_since_prune = 0
        self._migrate()
        self.prune()

    # -- connections -------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # PERF: one connection per thread (the threadpool's threads are long-lived).
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (at shutdown, when no request runs)."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        migrate(self._connection(), self._transaction)

    # -- writes ------------------------------------------------------------------------
    def add_spans(self, *, spans: Sequence[SpanRecord]) -> None:
        """Store one export's spans in one transaction; a span sent again replaces itself.

        Autoscaler decision spans are filed as decisions (the pool view), not as traces; they
        count toward the retention cadence like any span, so an idle platform whose only
        exports are decisions still prunes them.
        """
        decisions: list[Decision] = []
        kept: list[SpanRecord] = []
        for span in spans:
            decision = Decision.from_span(span) if span.parent_span_id is None else None
            if decision is not None:
                decisions.append(decision)
            else:
                kept.append(span)
        if not spans:
            return
        rows = [
            (
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.service,
                s.start,
                s.end,
                s.status,
                s.status_message,
                json.dumps(s.attributes, default=str),
                json.dumps(s.events, default=str),
                json.dumps(s.resource, default=str),
            )
            for s in kept
        ]
        with self._transaction() as connection:
            _decisions.insert(connection, decisions)
            stored = _trace_index.stored_keys(connection, kept)
            connection.executemany(
                "INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            _performance.insert(connection, kept)
            _trace_index.refresh(connection, kept, stored)
        self._count_export(len(spans))

    def add_logs(self, *, lines: Sequence[LogLine]) -> None:
        """Store one export's log records in one transaction."""
        if not lines:
            return
        rows = [
            (
                line.time,
                line.service,
                line.severity_number,
                line.level,
                line.body,
                line.trace_id,
                line.span_id,
                json.dumps(line.attributes, default=str),
            )
            for line in lines
        ]
        with self._transaction() as connection:
            connection.executemany("INSERT INTO logs VALUES (?,?,?,?,?,?,?,?)", rows)
        self._count_export(len(lines))

    def _count_export(self, records: int) -> None:
        self._exports_since_prune += 1
        self._records_since_prune += records
        if (
            self._exports_since_prune >= PRUNE_EVERY_EXPORTS
            or self._records_since_prune >= self._prune_after_records
        ):
            self.prune()

    def prune(self, *, now_ns: int | None = None) -> int:
        """Drop whole traces that are too old or beyond the span budget, oldest first; and
        log records too old or beyond theirs.

        Returns:
            How many traces were dropped.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        self._exports_since_prune = self._records_since_prune = 0
        with self._transaction() as connection:
            cutoff = too_old = now_ns - self.max_age_s * 1_000_000_000
            (stored,) = connection.execute(
                "SELECT COALESCE(SUM(span_count), 0) FROM traces"
            ).fetchone()
            if stored > self.max_spans:
                # Every span that starts before the newest ``max_spans`` goes with its trace;
                # a trace starts no later than any of its spans, so at most max_spans remain.
                (newest_dropped,) = connection.execute(
                    "SELECT start_ns FROM spans ORDER BY start_ns DESC LIMIT 1 OFFSET ?",
                    (self.max_spans,),
                ).fetchone()
                cutoff = max(cutoff, newest_dropped + 1)
            dropped = [
                row[0]
                for row in connection.execute(
                    "SELECT trace_id FROM traces WHERE start_ns < ?", (cutoff,)
                )
            ]
            self._drop_traces(connection, dropped)
            _decisions.prune(connection, before_ns=too_old, keep=self.max_spans)
            self._prune_logs(connection, before_ns=too_old)
        return len(dropped)

    def _prune_logs(self, connection: sqlite3.Connection, *, before_ns: int) -> None:
        connection.execute("DELETE FROM logs WHERE time_ns < ?", (before_ns,))
        newest_dropped = connection.execute(
            "SELECT rowid FROM logs ORDER BY rowid DESC LIMIT 1 OFFSET ?", (self.max_logs,)
        ).fetchone()
        if newest_dropped is not None:
            connection.execute("DELETE FROM logs WHERE rowid <= ?", newest_dropped)

    @staticmethod
    def _drop_traces(connection: sqlite3.Connection, trace_ids: list[str]) -> None:
        for chunk in chunks(trace_ids):
            # NOTE: a trace's log lines go with it (its page is gone: they could not be seen)
            for table in ("spans", "traces", "trace_services", "entries", "logs"):
                connection.execute(
                    f"DELETE FROM {table} WHERE trace_id IN ({marks(chunk)})",  # noqa: S608  # fixed names
                    chunk,
                )

    # -- reads -------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise unless the database answers a query (the readiness check)."""
        self._connection().execute("SELECT 1 FROM traces LIMIT 1").fetchall()

    def log_count(self) -> int:
        """How many log records are stored."""
        (count,) = self._connection().execute("SELECT COUNT(*) FROM logs").fetchone()
        return int(count)

    def trace_logs(
        self, *, trace_id: str, min_level: str = LEVELS[0], limit: int = MAX_TRACE_LOGS
    ) -> tuple[list[LogLine], bool]:
        """One trace's log records in time order, of ``min_level`` (one of ``LEVELS``) or
        above, the first ``limit`` of them; and whether there were more."""
        levels = LEVELS[LEVELS.index(min_level) :]
        rows = (
            self._connection()
            .execute(
                "SELECT time_ns, service, severity, level, body, span_id, attributes FROM logs "  # noqa: S608  # only placeholders vary
                f"WHERE trace_id = ? AND level IN ({marks(levels)}) "
                "ORDER BY time_ns, rowid LIMIT ?",
                (trace_id, *levels, limit + 1),
            )
            .fetchall()
        )
        lines = [
            LogLine(
                time=time_ns,
                service=service,
                severity_number=severity,
                level=level,
                body=body,
                trace_id=trace_id,
                span_id=span_id,
                attributes=json.loads(attributes),
            )
            for time_ns, service, severity, level, body, span_id, attributes in rows
        ]
        return lines[:limit], len(lines) > limit

    def performance(self, *, since_ns: int, window_s: int) -> Performance:
        """Rate, errors and latency per service and route, and per queue, of the entry spans
        that started since ``since_ns`` (the services page)."""
        return _performance.performance(self._connection(), since_ns=since_ns, window_s=window_s)

    def span_count(self) -> int:
        """How many spans are stored."""
        (count,) = self._connection().execute("SELECT COUNT(*) FROM spans").fetchone()
        return int(count)

    def recent_traces(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        min_duration_ms: float | None = None,
        errors_only: bool = False,
        trace_id: str | None = None,
        limit: int = 20,
    ) -> list[TraceOutline]:
        """The newest traces first, filtered.

        Args:
            service: only traces with a span of this service.
            operation: only traces whose root operation contains this (case-insensitive).
            min_duration_ms: only traces at least this long.
            errors_only: only traces with a span whose status is ERROR.
            trace_id: only traces whose id starts with this (hex).
            limit: at most this many.
        """
        where: list[str] = []
        args: list[str | int] = []
        if operation:
            where.append("instr(lower(t.root_name), lower(?)) > 0")
            args.append(operation)
        if min_duration_ms:
            where.append("t.end_ns - t.start_ns >= ?")
            # NOTE: SQLite integers end at 2**63; no trace is longer than that anyway
            args.append(min(int(min_duration_ms * 1_000_000), 2**63 - 1))
        if errors_only:
            where.append("t.error = 1")
        if trace_id:
            where.append("t.trace_id >= ? AND t.trace_id < ?")
            args += [trace_id.lower(), trace_id.lower() + "g"]  # a prefix, through the key
        if service:
            source, order = "trace_services s JOIN traces t ON t.trace_id = s.trace_id", "s"
            where.insert(0, "s.service = ?")
            args.insert(0, service)
        else:
            source, order = "traces t", "t"
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        rows: Iterable[Sequence[object]] = self._connection().execute(
            f"SELECT {_TRACE_COLUMNS_OF_T} FROM {source} {condition}"  # noqa: S608  # only placeholders carry input
            f"ORDER BY {order}.start_ns DESC, t.trace_id LIMIT ?",
            (*args, limit),
        )
        return [_trace_outline(row) for row in rows]

    def services(self) -> list[str]:
        """Every service with a stored span, by name."""
        rows = self._connection().execute("SELECT DISTINCT service FROM trace_services")
        return sorted(row[0] for row in rows)

    def pools(self, *, since_ns: int) -> list[PoolView]:
        """Each autoscaled pool with a decision since ``since_ns`` (the pool view)."""
        return _decisions.pool_views(self._connection(), since_ns=since_ns)

    def trace_spans(self, *, trace_id: str) -> list[SpanRecord]:
        """Every stored span of one trace, by start time (empty for an unknown trace)."""
        rows = self._connection().execute(
            f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? "  # noqa: S608  # fixed names
            "ORDER BY start_ns, span_id",
            (trace_id,),
        )
        return [
            SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=kind,
                service=service,
                start=start,
                end=end,
                status=status,
                status_message=message,
                attributes=json.loads(attributes),
                events=json.loads(events),
            )
            for (
                span_id,
                parent,
                name,
                kind,
                service,
                start,
                end,
                status,
                message,
                attributes,
                events,
            ) in rows
        ]
