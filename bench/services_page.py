"""What the console's services page costs to compute, and why SQLite computes it from an
``entries`` table: the figures from the narrow table the store files SERVER and CONSUMER spans
in, grouped and ranked by SQLite (what the console does), against reading those spans'
attributes out of their JSON (``json_extract`` on the spans table) and grouping and sorting
them in Python (the obvious way), side by side in one run, at a full span budget.

A store of ``--traces`` traces of 42 spans (an order's shape: 10 SERVER, 2 CONSUMER) spread
over five minutes; each variant computes the five-minute window ``--rounds`` times. Prints
medians and the ratio::

    uv run python bench/services_page.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flotilla.console._otlp import SpanRecord
from flotilla.console._store import SpanStore

KINDS = ["SERVER"] * 10 + ["CLIENT"] * 10 + ["INTERNAL"] * 18 + ["CONSUMER", "PRODUCER"] * 2
SERVICES = ("edge", "orders-api", "inventory-api", "payments-api")
WINDOW_S = 300
FROM_JSON = (
    "SELECT trace_id, service, kind, name, start_ns, end_ns - start_ns, status = 'ERROR', "
    """json_extract(attributes, '$."http.route"'), """
    """json_extract(attributes, '$."http.request.method"'), """
    """json_extract(attributes, '$."messaging.destination.name"'), """
    """json_extract(attributes, '$."messaging.dramatiq.queue_wait_ms"') """
    "FROM spans WHERE start_ns >= ? AND kind IN ('SERVER', 'CONSUMER')"
)


def nearest_rank(ordered: list[float], q: int) -> float:
    return ordered[max(-(-len(ordered) * q // 100), 1) - 1]


def fill(store: SpanStore, traces: int) -> None:
    rng = random.Random(7)
    now = time.time_ns()
    batch: list[SpanRecord] = []
    for t in range(traces):
        start = now - rng.randint(0, WINDOW_S * 10**9 - 10**9)
        for i, kind in enumerate(KINDS):
            attributes: dict[str, object] = {"db.statement": "SELECT * FROM orders WHERE id = ?"}
            if kind == "SERVER":
                attributes = {"http.route": "/orders", "http.request.method": "POST"}
            elif kind == "CONSUMER":
                attributes = {
                    "messaging.destination.name": "orders",
                    "messaging.dramatiq.queue_wait_ms": rng.random() * 20,
                    "messaging.dramatiq.attempt": 1,
                }
            batch.append(
                SpanRecord(
                    trace_id=f"{t:032x}",
                    span_id=f"{i + 1:016x}",
                    parent_span_id=None if i == 0 else f"{1:016x}",
                    name="POST /orders",
                    kind=kind,
                    service=SERVICES[i % len(SERVICES)],
                    start=start + i * 1000,
                    end=start + i * 1000 + rng.randint(10**5, 10**8),
                    status="UNSET",
                    status_message="",
                    attributes=attributes,
                )
            )
        if len(batch) >= 4000:
            store.add_spans(spans=batch)
            batch = []
    store.add_spans(spans=batch)


def from_entries(store: SpanStore, since: int) -> int:
    return len(store.performance(since_ns=since, window_s=WINDOW_S).services)


def from_json(store: SpanStore, since: int) -> int:
    """The same groups and figures, in Python: counts, errors, slowest, p50/p95/p99, waits."""
    rows = store._connection().execute(FROM_JSON, (since,))  # the baseline
    groups: dict[tuple[object, ...], list[tuple[object, ...]]] = {}
    for trace_id, service, kind, name, start, duration, error, route, method, queue, wait in rows:
        operation = f"{method} {route}" if route else name
        key = ("queue", queue) if kind == "CONSUMER" and queue else ("route", service, operation)
        groups.setdefault(key, []).append((duration, error, trace_id, start, wait))
        if key[0] == "route":
            groups.setdefault(("service", service), []).append(
                (duration, error, trace_id, start, wait)
            )
    for spans in groups.values():
        durations = sorted(float(s[0]) for s in spans)  # type: ignore[arg-type]
        [nearest_rank(durations, q) for q in (50, 95, 99)]
        max(spans, key=lambda s: s[0])  # type: ignore[arg-type,return-value]
        sum(bool(s[1]) for s in spans)
        waits = sorted(float(s[4]) for s in spans if s[4] is not None)  # type: ignore[arg-type]
        [nearest_rank(waits, q) for q in (50, 95, 99) if waits]
    return sum(1 for key in groups if key[0] == "service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    path = str(Path(tempfile.mkdtemp()) / "console.db")
    store = SpanStore(path, max_spans=10**7, max_age_s=3600)
    fill(store, args.traces)
    since = time.time_ns() - WINDOW_S * 10**9 - 10**9
    (entries,) = store._connection().execute("SELECT COUNT(*) FROM entries").fetchone()
    variants = {"entries table": from_entries, "JSON of the spans": from_json}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, compute in variants.items():
            started = time.perf_counter()
            assert compute(store, since) == len(SERVICES)
            results[name].append((time.perf_counter() - started) * 1000)
    out = Console()
    table = Table(
        title=f"services page, 5-minute window: {store.span_count()} spans, {entries} entry spans"
    )
    table.add_column("read from")
    table.add_column("median", justify="right")
    for name, times in results.items():
        table.add_row(name, f"{statistics.median(times):.0f} ms")
    out.print(table)
    fast, slow = (statistics.median(times) for times in results.values())
    out.print(f"the JSON of the spans takes {slow / fast:.2f}x the entries table")


if __name__ == "__main__":
    main()
