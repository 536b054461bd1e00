"""The console store's schema, its migrations (``PRAGMA user_version``) and its SQL helpers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from . import _decisions, _performance, _trace_index

SCHEMA_VERSION = 4
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, kind TEXT NOT NULL, service TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status TEXT NOT NULL, status_message TEXT NOT NULL,
    attributes TEXT NOT NULL, events TEXT NOT NULL, resource TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL, error INTEGER NOT NULL,
    root_service TEXT NOT NULL, root_name TEXT NOT NULL, services TEXT NOT NULL,
    root_span_id TEXT, root_parent_span_id TEXT
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns);
CREATE TABLE IF NOT EXISTS trace_services (
    trace_id TEXT NOT NULL, service TEXT NOT NULL, start_ns INTEGER NOT NULL,
    PRIMARY KEY (trace_id, service)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_services_service ON trace_services (service, start_ns);
CREATE TABLE IF NOT EXISTS logs (
    time_ns INTEGER NOT NULL, service TEXT NOT NULL, severity INTEGER NOT NULL,
    level TEXT NOT NULL, body TEXT NOT NULL, trace_id TEXT, span_id TEXT,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id, time_ns) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_time ON logs (time_ns);
"""
    + _decisions.SCHEMA
    + _performance.SCHEMA
)


def migrate(
    connection: sqlite3.Connection,
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
) -> None:
    """Bring a store's database to :data:`SCHEMA_VERSION` (``transaction``: the store's write
    transaction, so a migration waits for other writers)."""
    connection.executescript(_SCHEMA)  # idempotent: IF NOT EXISTS throughout
    with transaction() as writer:
        (version,) = writer.execute("PRAGMA user_version").fetchone()
        if version >= SCHEMA_VERSION:
            return
        columns = {row[1] for row in writer.execute("PRAGMA table_info(traces)")}
        if "root_span_id" not in columns:
            # Version 4 keeps each row's root, so exports merge into it (_trace_index.py);
            # a row without one is rebuilt when its trace is next touched.
            writer.execute("ALTER TABLE traces ADD COLUMN root_span_id TEXT")
            writer.execute("ALTER TABLE traces ADD COLUMN root_parent_span_id TEXT")
        if version < 2:
            # Version 1 stored spans only; their trace summaries are built once here.
            trace_ids = [row[0] for row in writer.execute("SELECT DISTINCT trace_id FROM spans")]
            _trace_index.rebuild_rows(writer, trace_ids)
        # Version 3 added the logs and entries tables (created above); the stored spans'
        # entries are filed once here.
        _performance.backfill(writer)
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


_CHUNK = 400  # ids per ``IN (...)``, well under SQLite's bound-parameter limit


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for offset in range(0, len(items), _CHUNK):
        yield items[offset : offset + _CHUNK]


def marks(items: Sequence[str]) -> str:
    return ",".join("?" * len(items))
