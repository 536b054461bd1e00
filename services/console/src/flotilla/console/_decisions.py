"""The autoscalers' decisions, filed from their spans into a table the pool view reads.

The operator (in a cluster) and ``flotilla up``'s local autoscaler record every decision as a
root span named ``autoscale decision`` with ``flotilla.*`` attributes (docs/contracts.md). The
console keeps those out of the trace list — one span a second per pool would bury the
requests — and files them here: one row per decision, by pool and time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._otlp import SpanRecord

DECISION_SPAN = "autoscale decision"
SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    pool TEXT NOT NULL, time_ns INTEGER NOT NULL, service TEXT NOT NULL,
    target TEXT NOT NULL, queues TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
    current INTEGER NOT NULL, desired INTEGER NOT NULL, min INTEGER NOT NULL,
    max INTEGER NOT NULL, depth INTEGER, ready INTEGER, delayed_due INTEGER, in_flight INTEGER,
    PRIMARY KEY (pool, time_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time_ns);
"""
_FIELDS = (
    "pool, time_ns, service, target, queues, action, reason, current, desired, min, max, "
    "depth, ready, delayed_due, in_flight"
)
#: The actions that changed (or tried to change) a pool, listed as "last decisions".
CHANGES = ("scale-up", "scale-down", "fallback")


@dataclass(frozen=True)
class Decision:
    """One autoscaler decision about one pool."""

    pool: str
    time: int  # epoch nanoseconds
    service: str
    target: str
    queues: tuple[str, ...]
    action: str
    reason: str
    current: int
    desired: int
    min: int
    max: int
    depth: int | None  # None: the broker could not be read
    ready: int | None
    delayed_due: int | None
    in_flight: int | None

    @classmethod
    def from_span(cls, span: SpanRecord) -> Decision | None:
        """The decision a span records, or ``None`` if it is not a decision span."""
        a = span.attributes
        if span.name != DECISION_SPAN or "flotilla.autoscaler" not in a:
            return None
        try:
            depth = int(a.get("flotilla.depth", -1))
            return cls(
                pool=str(a["flotilla.autoscaler"]),
                time=span.start,
                service=span.service,
                target=str(a.get("flotilla.target", "")),
                queues=tuple(str(q) for q in a.get("flotilla.queues", ())),
                action=str(a.get("flotilla.action", "")),
                reason=str(a.get("flotilla.reason", "")),
                current=int(a.get("flotilla.replicas.current", 0)),
                desired=int(a.get("flotilla.replicas.desired", 0)),
                min=int(a.get("flotilla.replicas.min", 0)),
                max=int(a.get("flotilla.replicas.max", 0)),
                depth=depth if depth >= 0 else None,
                ready=_optional(a.get("flotilla.depth.ready")),
                delayed_due=_optional(a.get("flotilla.depth.delayed_due")),
                in_flight=_optional(a.get("flotilla.depth.in_flight")),
            )
        except (TypeError, ValueError):  # a malformed span is kept as a plain span instead
            return None


def _optional(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class PoolView:
    """What the pool page shows of one pool."""

    name: str
    latest: Decision
    series: list[Decision]  # oldest first, thinned to at most a few hundred points
    changes: list[Decision]  # newest first


def insert(connection: sqlite3.Connection, decisions: Sequence[Decision]) -> None:
    connection.executemany(
        f"INSERT OR REPLACE INTO decisions ({_FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608  # fixed names
        [
            (
                d.pool,
                d.time,
                d.service,
                d.target,
                json.dumps(d.queues),
                d.action,
                d.reason,
                d.current,
                d.desired,
                d.min,
                d.max,
                d.depth,
                d.ready,
                d.delayed_due,
                d.in_flight,
            )
            for d in decisions
        ],
    )


def prune(connection: sqlite3.Connection, *, before_ns: int, keep: int) -> None:
    """Drop decisions older than ``before_ns``, and beyond the newest ``keep``."""
    connection.execute("DELETE FROM decisions WHERE time_ns < ?", (before_ns,))
    connection.execute(
        "DELETE FROM decisions WHERE time_ns < "
        "(SELECT time_ns FROM decisions ORDER BY time_ns DESC LIMIT 1 OFFSET ?)",
        (keep,),
    )


def _row(row: Sequence[Any]) -> Decision:
    pool, time_ns, service, target, queues, action, reason, *numbers = row
    current, desired, low, high, depth, ready, delayed, in_flight = numbers
    return Decision(
        pool=pool,
        time=time_ns,
        service=service,
        target=target,
        queues=tuple(json.loads(queues)),
        action=action,
        reason=reason,
        current=current,
        desired=desired,
        min=low,
        max=high,
        depth=depth,
        ready=ready,
        delayed_due=delayed,
        in_flight=in_flight,
    )


def pool_views(
    connection: sqlite3.Connection, *, since_ns: int, points: int = 240, changes: int = 8
) -> list[PoolView]:
    """Every pool with a decision since ``since_ns``, by name."""
    views = []
    names = [
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT pool FROM decisions WHERE time_ns >= ? ORDER BY pool", (since_ns,)
        )
    ]
    for name in names:
        series = [
            _row(row)
            for row in connection.execute(
                f"SELECT {_FIELDS} FROM decisions WHERE pool = ? AND time_ns >= ? "  # noqa: S608  # fixed names
                "ORDER BY time_ns",
                (name, since_ns),
            )
        ]
        step = max(1, len(series) // points)
        # PERF: thin evenly, but keep every change of replicas and the latest decision.
        thinned = [
            d
            for i, d in enumerate(series)
            if i % step == 0 or d.action in CHANGES or i == len(series) - 1
        ]
        latest_changes = [
            _row(row)
            for row in connection.execute(
                f"SELECT {_FIELDS} FROM decisions WHERE pool = ? AND action IN (?,?,?) "  # noqa: S608  # fixed names
                "ORDER BY time_ns DESC LIMIT ?",
                (name, *CHANGES, changes),
            )
        ]
        views.append(PoolView(name, series[-1], thinned, latest_changes))
    return views
