"""Service performance from stored spans (what Jaeger calls SPM): per service and route, rate,
errors and latency percentiles; per queue, messages/s, queue wait and retries.

The store files every SERVER and CONSUMER span here as it arrives, with the few attributes
this reads, in a narrow ``entries`` table ordered by start time (rather than reading every
span's JSON): one query reads the window's rows without their trace ids (the costly column),
the groups and their percentiles are made in Python, and the few traces shown are looked up by
their start (the table's key): 0.2-0.3 s for 60,000 entry spans (``bench/services_page.py``).

Rates are over the whole window, as Prometheus' ``rate()`` is, so a burst reads as its share
of the window. Percentiles are nearest-rank over every span in the window (exact, not from
buckets). Groups are bounded: a route is the instrumentation's ``http.route`` template, a
server span without one counts under its method as ``(unrouted)`` (under its span name when
it has no method either), and past :data:`MAX_ROUTES` rows the rest fold into one.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ._otlp import SpanRecord

#: The windows a reader may choose, in minutes.
WINDOWS_MIN = (1, 5, 15, 60)
UNROUTED = "(unrouted)"
QUANTILES = (50, 95, 99)
#: At most this many rows of routes per service (and of services, and of queues); the rest are
#: one row: the platform has a few dozen routes, an exporter may send any names.
MAX_ROUTES = 50
OTHER_ROUTES, OTHER_SERVICES, OTHER_QUEUES = "(other routes)", "(other services)", "(other queues)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, service TEXT NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
    error INTEGER NOT NULL, route TEXT, method TEXT, queue TEXT, wait_ms REAL, attempt INTEGER,
    PRIMARY KEY (start_ns, trace_id, span_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS entries_span ON entries (trace_id, span_id);
"""
#: The attributes filed, in the table's order, and their types (a value of another type,
#: whatever an exporter sent, is filed as NULL).
_KEYS: dict[str, tuple[type, ...]] = {
    "http.route": (str,),
    "http.request.method": (str,),
    "messaging.destination.name": (str,),
    "messaging.dramatiq.queue_wait_ms": (int, float),
    "messaging.dramatiq.attempt": (int,),
}
KINDS = ("SERVER", "CONSUMER")
_SQL_TYPES = {str: "'text'", int: "'integer'", float: "'real'"}


def _filed(value: object, types: tuple[type, ...]) -> object:
    if isinstance(value, bool) or not isinstance(value, types) or value == "":
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # SQLite's integers
        return None
    return value


def insert(connection: sqlite3.Connection, spans: Iterable[SpanRecord]) -> None:
    """File the entry spans among ``spans`` (in the caller's transaction); a span sent again
    replaces its row, whatever its start (``entries_span`` is unique)."""
    connection.executemany(
        "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                s.trace_id,
                s.span_id,
                s.service,
                s.kind,
                s.name,
                s.start,
                s.end - s.start,
                int(s.status == "ERROR"),
                *(_filed(s.attributes.get(key), types) for key, types in _KEYS.items()),
            )
            for s in spans
            if s.kind in KINDS
        ],
    )


def backfill(connection: sqlite3.Connection) -> None:
    """File the entry spans of a store written before this table existed (its migration)."""

    def column(key: str, types: tuple[type, ...]) -> str:
        path = f"""'$."{key}"'"""
        wanted = ", ".join(_SQL_TYPES[t] for t in types)
        value = f"json_extract(attributes, {path})"
        kept = f"json_type(attributes, {path}) IN ({wanted}) AND {value} != ''"
        # NOTE: nested, so json_type never reads what is not JSON (NaN, written by old versions)
        return f"CASE WHEN json_valid(attributes) THEN CASE WHEN {kept} THEN {value} END END"

    columns = ", ".join(column(key, types) for key, types in _KEYS.items())
    connection.execute(
        "INSERT OR REPLACE INTO entries SELECT trace_id, span_id, service, kind, name, "  # noqa: S608  # fixed names
        f"start_ns, end_ns - start_ns, status = 'ERROR', {columns} FROM spans "
        "WHERE kind IN ('SERVER', 'CONSUMER')"
    )


@dataclass(frozen=True)
class Latency:
    """Nearest-rank percentiles, milliseconds."""

    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Examples:
    """Traces to look at: the slowest, and the newest that failed (``None``: none failed)."""

    slowest: str
    slowest_ms: float
    failed: str | None


@dataclass(frozen=True)
class RouteStats:
    """Requests of one route (or of the whole service: ``operation`` is ``None``)."""

    operation: str | None
    requests: int
    errors: int
    rate_per_s: float
    error_ratio: float
    latency: Latency
    examples: Examples


@dataclass(frozen=True)
class ServiceStats:
    service: str
    total: RouteStats
    routes: list[RouteStats]  # busiest first


@dataclass(frozen=True)
class QueueStats:
    """Messages of one queue, as its consumers processed them."""

    queue: str
    consumers: list[str]  # the services that consumed from it
    messages: int  # deliveries processed (a retry counts again)
    failures: int
    retries: int  # deliveries after the first
    rate_per_s: float
    wait: Latency  # time in the queue before processing
    processing: Latency
    examples: Examples


@dataclass(frozen=True)
class Performance:
    window_s: int
    services: list[ServiceStats]
    queues: list[QueueStats]
    #: spans each service's processes dropped (their exporter's queue was full), from the log
    #: lines they say it with (``spans.dropped``); their traces have holes
    dropped_spans: dict[str, int]


# -- the figures ---------------------------------------------------------------------------
#: The window's entry spans with their group: a queue for a consumed message, else the
#: service and its operation (the route template with its method). No trace id: reading 60,000
#: of them costs more than the rest of the row; the few that are shown are looked up by start.
_WINDOW = """
SELECT CASE WHEN kind = 'CONSUMER' AND queue IS NOT NULL THEN queue END, service,
       CASE WHEN route IS NOT NULL THEN COALESCE(method || ' ', '') || route
            WHEN method IS NOT NULL THEN method || ' (unrouted)' ELSE name END,
       start_ns, duration_ns, error, wait_ms, COALESCE(attempt, 1) > 1
FROM entries WHERE start_ns >= ?
"""


def _rank(count: int, quantile: int) -> int:
    return max(-(-count * quantile // 100), 1)  # nearest rank: ceil(q/100 * n), at least 1


def _latency(values: list[float], scale: float = 1e-6) -> Latency:
    """Nearest-rank percentiles of ``values`` (nanoseconds, unless ``scale`` says), in ms."""
    if not values:
        return Latency(0.0, 0.0, 0.0)
    values.sort()
    return Latency(*(round(values[_rank(len(values), q) - 1] * scale, 3) for q in QUANTILES))


class _Group:
    """What one route, service or queue adds up to over the window."""

    __slots__ = ("durations", "errors", "failed", "retries", "services", "slowest", "waits")

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.waits: list[float] = []
        self.errors = self.retries = 0
        self.slowest: tuple[int, int, str] = (-1, 0, "")  # (duration, start, service)
        self.failed: tuple[int, str] | None = None  # the newest failed span's (start, service)
        self.services: set[str] = set()

    def add(
        self, service: str, start: int, duration: int, error: int, wait: float | None, retried: int
    ) -> None:
        self.durations.append(duration)
        self.services.add(service)
        if duration > self.slowest[0]:
            self.slowest = (duration, start, service)
        if error:
            self.errors += 1
            if self.failed is None or start > self.failed[0]:
                self.failed = (start, service)
        if wait is not None:
            self.waits.append(wait)
        self.retries += retried

    def merge(self, other: _Group) -> None:
        """Take in another group (the rows beyond :data:`MAX_ROUTES` fold into one)."""
        self.durations += other.durations
        self.waits += other.waits
        self.errors += other.errors
        self.retries += other.retries
        self.slowest = max(self.slowest, other.slowest)
        if other.failed is not None and (self.failed is None or other.failed > self.failed):
            self.failed = other.failed
        self.services |= other.services


def _trace_at(
    connection: sqlite3.Connection, start: int, service: str, duration: int | None = None
) -> str:
    """The trace of the entry span of ``service`` that started at ``start`` (and lasted
    ``duration``, or failed): a lookup by the table's key."""
    condition, args = "error = 1", [start, service]
    if duration is not None:
        condition, args = "duration_ns = ?", [start, service, duration]
    row = connection.execute(
        "SELECT trace_id FROM entries WHERE start_ns = ? AND service = ? "  # noqa: S608  # fixed text
        f"AND {condition} LIMIT 1",
        args,
    ).fetchone()
    return str(row[0]) if row else ""


def _stats(
    connection: sqlite3.Connection, operation: str | None, group: _Group, window_s: int
) -> RouteStats:
    count = len(group.durations)
    return RouteStats(
        operation=operation,
        requests=count,
        errors=group.errors,
        rate_per_s=round(count / window_s, 3),
        error_ratio=round(group.errors / count, 4),
        latency=_latency(group.durations),
        examples=_examples(connection, group),
    )


def _examples(connection: sqlite3.Connection, group: _Group) -> Examples:
    duration, start, service = group.slowest
    failed = group.failed
    return Examples(
        slowest=_trace_at(connection, start, service, duration),
        slowest_ms=round(duration / 1e6, 3),
        failed=_trace_at(connection, *failed) if failed is not None else None,
    )


def _capped(groups: dict[str, _Group], other: str) -> dict[str, _Group]:
    """The busiest :data:`MAX_ROUTES` groups, the rest folded into one called ``other``: a
    page stays a page whatever names an exporter sends."""
    if len(groups) <= MAX_ROUTES:
        return groups
    ranked = sorted(groups.items(), key=lambda item: -len(item[1].durations))
    kept, folded = dict(ranked[: MAX_ROUTES - 1]), _Group()
    for _, group in ranked[MAX_ROUTES - 1 :]:
        folded.merge(group)
    return {**kept, other: folded}


def _busiest_first(route: RouteStats) -> tuple[bool, int, str]:
    """Routes by requests, the folded row last."""
    return (route.operation == OTHER_ROUTES, -route.requests, route.operation or "")


#: The spans each service said it dropped in the window (flotilla.core._span_drops).
_DROPPED = """
SELECT service, SUM(CAST(json_extract(attributes, '$."spans.dropped"') AS INTEGER))
FROM logs WHERE time_ns >= ? AND body LIKE 'spans dropped%'
GROUP BY service
"""


def performance(connection: sqlite3.Connection, *, since_ns: int, window_s: int) -> Performance:
    """The figures of every entry span that started since ``since_ns``."""
    routes: dict[str, dict[str, _Group]] = defaultdict(lambda: defaultdict(_Group))
    queues: dict[str, _Group] = defaultdict(_Group)
    for queue, service, operation, *figures in connection.execute(_WINDOW, (since_ns,)):
        if queue is not None:
            queues[queue].add(service, *figures)
        else:
            routes[service][operation].add(service, *figures)
    # NOTE: a service's total is its routes taken together (each span is added once)
    services: dict[str, _Group] = {}
    for service, operations in routes.items():
        services[service] = total = _Group()
        for group in operations.values():
            total.merge(group)
    services = _capped(services, OTHER_SERVICES)
    queues = _capped(queues, OTHER_QUEUES)
    by_service: dict[str, list[RouteStats]] = defaultdict(list)
    folded = _Group()  # the routes of the services folded into OTHER_SERVICES: one row
    for service, operations in routes.items():
        if service not in services:
            for group in operations.values():
                folded.merge(group)
            continue
        for operation, group in _capped(operations, OTHER_ROUTES).items():
            by_service[service].append(_stats(connection, operation, group, window_s))
    if folded.durations:
        by_service[OTHER_SERVICES].append(_stats(connection, OTHER_ROUTES, folded, window_s))
    return Performance(
        window_s=window_s,
        services=[
            ServiceStats(
                service=service,
                total=_stats(connection, None, services[service], window_s),
                routes=sorted(by_service[service], key=_busiest_first),
            )
            for service in sorted(services, key=lambda name: (name == OTHER_SERVICES, name))
        ],
        queues=[
            QueueStats(
                queue=queue,
                consumers=sorted(group.services),
                messages=len(group.durations),
                failures=group.errors,
                retries=group.retries,
                rate_per_s=round(len(group.durations) / window_s, 3),
                wait=_latency(group.waits, scale=1.0),
                processing=_latency(group.durations),
                examples=_examples(connection, group),
            )
            for queue, group in sorted(queues.items(), key=lambda q: (q[0] == OTHER_QUEUES, q[0]))
        ],
        dropped_spans={
            service: int(count)
            for service, count in connection.execute(_DROPPED, (since_ns,))
            if count
        },
    )
