"""The sustainable rate: the most orders a second the platform completes as fast as it accepts.

    uv run python bench/platform_load.py --sustainable   # SQLite and PostgreSQL, traced and not
    uv run python bench/platform_load.py --sustainable --seconds 30 --variants traced-sqlite

For each variant, one ``flotilla up`` (autoscaler on, as `make run` runs it) is offered orders
at a steady rate through the edge: ``wrk`` with a per-connection delay (``delay()`` in its Lua
script) so that its connections together send about the offered rate. The offered rate grows by
a quarter each step; a step is sustained when, over its window (60 s by default), orders
fulfilled per second stay within 5 % of orders accepted per second, nothing was refused (no
503: the back-pressure did not have to act) and the orders queue's wait stayed bounded (p95
under ``QUEUE_WAIT_BOUND_MS``; untraced it is not known). The last sustained step is the
sustainable rate. At it the table gives: complete orders/s, p50/p95/p99 of the 202, 202 to
``fulfilled`` (p50/p95 of orders sampled every 250 ms), CPU milliseconds per complete order
for each kind of process (the console, the payment stand-in and the mail sink also apart,
since in a cluster they are not on the order's cores), spans per order (of the sampled
orders' traces) and spans dropped.

With a database run both traced and untraced, tracing on ÷ off: the sustainable rates, and the
CPU per complete order.

Then two more windows: at 80 % of the sustainable rate (the p99 of the 202 there) and at twice
it (only 202 or 503-with-Retry-After may come back, and no accepted order may fail).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.platform_load import (
    ORDER,
    Sampler,
    _cpu,
    _fulfilled,
    _kind,
    _percentile,
    _platform,
    _processes,
)
from tests.support.local_platform import FlotillaUp

#: not on an order's cores in a cluster: reported apart from the order path
OFF_PATH = ("console", "payments", "smtp")
GROWTH = 1.25
CONNECTIONS = 32
#: a sustained window's orders queue wait, p95 (a growing backlog shows there first)
QUEUE_WAIT_BOUND_MS = 1000.0

LUA = """
local counter, prefix = 0, ""
local threads = {}
statuses = {}  -- a global: done() reads each thread's with thread:get
function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000000)))
  table.insert(threads, thread)
end
function init(args)
  prefix = "%(run)s-" .. id .. "-"
  statuses = {}
end
function delay()
  return %(delay_ms)d
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/api/orders", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(key)s",
    ["Idempotency-Key"] = prefix .. counter,
  }, '%(body)s')
end
function response(status, headers, body)
  local name = tostring(status)
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    name = "503-without-retry-after"
  end
  statuses[name] = (statuses[name] or 0) + 1
end
function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for name, count in pairs(seen) do all[name] = (all[name] or 0) + count end
  end
  local parts = {}
  for name, count in pairs(all) do table.insert(parts, string.format('"%%s": %%d', name, count)) end
  io.write("RESULT ", string.format(
    '{"requests": %%d, "duration_us": %%d, "errors": %%d, "p50": %%d, "p95": %%d, "p99": %%d, '
    .. '"statuses": {%%s}}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    table.concat(parts, ", ")))
end
"""


@dataclass
class Window:
    """One steady-rate window and what it counted."""

    offered_per_s: float
    seconds: float
    accepted_per_s: float
    fulfilled_per_s: float
    statuses: dict[str, int]
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    to_fulfilled_p50_ms: float
    to_fulfilled_p95_ms: float
    queue_wait_p95_ms: float
    spans_per_order: float
    spans_dropped: int
    failed_orders: int
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)
    #: the machine's PostgreSQL server (every ``postgres`` process), per complete order: on
    #: the same cores here, on its own in a cluster; in neither sum
    database_server_cpu_ms: float = 0.0

    @property
    def sustained(self) -> bool:
        refused = sum(n for s, n in self.statuses.items() if s != "202")
        return (
            self.fulfilled_per_s >= 0.95 * self.accepted_per_s
            and refused == 0
            and self.errors == 0
            and self.failed_orders == 0
            # NOTE: untraced, the console sees no CONSUMER span and the wait is unknown (NaN):
            # the books (fulfilled keeping up with accepted) decide alone
            and not self.queue_wait_p95_ms > QUEUE_WAIT_BOUND_MS
        )

    @property
    def path_cpu_ms(self) -> float:
        return sum(v for k, v in self.cpu_ms_per_order.items() if not k.startswith(OFF_PATH))

    @property
    def all_cpu_ms(self) -> float:
        return sum(self.cpu_ms_per_order.values())


def _wrk(platform: FlotillaUp, rate: float, seconds: float, script: Path) -> dict[str, Any]:
    import subprocess

    delay_ms = max(0, int(1000 * CONNECTIONS / rate))
    body = json.dumps(ORDER).replace("'", "\\'")
    run = uuid.uuid4().hex  # NOTE: Lua's random ids repeat from one wrk to the next
    script.write_text(
        LUA % {"key": platform.api_key, "body": body, "delay_ms": delay_ms, "run": run}
    )
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:.0f}s", "--latency",
         "--timeout", "10s", "-s", str(script), platform.edge],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def _services(platform: FlotillaUp) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(
        f"{platform.console}/api/services", params={"minutes": 1}, timeout=60
    ).json()
    return answer


def _spans_per_trace(platform: FlotillaUp, traces: list[str]) -> float:
    """The mean span count of the sampled orders' traces (the console's own summaries)."""
    import sqlite3

    time.sleep(2)  # NOTE: the exporters' last batches reach the console
    with sqlite3.connect(platform.var_dir / "console.db") as db:
        counts = [
            row[0]
            for trace in traces
            for row in db.execute("SELECT span_count FROM traces WHERE trace_id = ?", (trace,))
        ]
    return sum(counts) / len(counts) if counts else float("nan")


def _failed(orders: Any) -> int:
    import sqlalchemy as sa

    with orders.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM orders WHERE status = 'failed'")
            ).scalar_one()
        )


def _database_server() -> dict[str, psutil.Process]:
    """The machine's PostgreSQL server: its postmaster, background workers and backends (the
    services' pooled connections live through a window)."""
    return {
        f"postgres-{p.pid}": p
        for p in psutil.process_iter(["name"])
        if (p.info.get("name") or "").startswith("postgres")
    }


def window(platform: FlotillaUp, orders: Any, rate: float, seconds: float, work: Path) -> Window:
    """Offer ``rate`` orders/s for ``seconds``; what came of it."""
    processes = _processes(platform)
    servers = _database_server()
    cpu_before, fulfilled_before = _cpu(processes), _fulfilled(orders)
    server_before = _cpu(servers)
    dropped_before = sum(_services(platform)["dropped_spans"].values())
    failed_before = _failed(orders)
    with Sampler(platform) as sampler:
        started = time.monotonic()
        result = _wrk(platform, rate, seconds, work / "sustain.lua")
        elapsed = time.monotonic() - started
    fulfilled = _fulfilled(orders) - fulfilled_before
    processes.update(_processes(platform))
    cpu_after, server_after = _cpu(processes), _cpu(servers)
    statuses = {str(k): int(v) for k, v in result["statuses"].items()}
    accepted = statuses.get("202", 0) + sampler.placed
    # NOTE: the orders accepted in the window have a moment to finish before failures count
    time.sleep(5)
    services = _services(platform)
    queue = next((q for q in services["queues"] if q["queue"] == "orders"), None)
    per_kind: dict[str, float] = {}
    for name, after in cpu_after.items():
        kind = _kind(name)
        per_kind[kind] = per_kind.get(kind, 0.0) + after - cpu_before.get(name, 0.0)
    complete = max(1, fulfilled)
    return Window(
        offered_per_s=rate,
        seconds=elapsed,
        accepted_per_s=accepted / elapsed,
        fulfilled_per_s=fulfilled / elapsed,
        statuses=statuses,
        errors=int(result["errors"]),
        p50_ms=result["p50"] / 1000,
        p95_ms=result["p95"] / 1000,
        p99_ms=result["p99"] / 1000,
        to_fulfilled_p50_ms=_percentile(sampler.times_ms, 0.5),
        to_fulfilled_p95_ms=_percentile(sampler.times_ms, 0.95),
        queue_wait_p95_ms=float(queue["wait"]["p95"]) if queue else float("nan"),
        spans_per_order=_spans_per_trace(platform, sampler.traces),
        spans_dropped=sum(services["dropped_spans"].values()) - dropped_before,
        failed_orders=_failed(orders) - failed_before,
        cpu_ms_per_order={
            kind: 1000 * value / complete
            for kind, value in sorted(per_kind.items())
            if kind != "redis"
        },
        database_server_cpu_ms=1000
        * sum(after - server_before.get(name, after) for name, after in server_after.items())
        / complete,
    )


@dataclass
class Finding:
    variant: str
    steps: list[Window]
    sustainable: Window | None
    easy: Window | None  # at 80 % of the sustainable rate
    overload: Window | None  # at twice it


def find(variant: str, seconds: float, start_rate: float, work: Path) -> Finding:
    """Grow the offered rate until a window is not sustained; then 80 % and 2x of the last
    sustained one."""
    steps: list[Window] = []
    with _platform(variant, work) as (platform, orders):
        rate = start_rate
        best: Window | None = None
        while True:
            print(f"  {variant}: offering {rate:.0f} orders/s for {seconds:.0f} s", flush=True)
            seen = window(platform, orders, rate, seconds, work)
            steps.append(seen)
            print(
                f"    accepted {seen.accepted_per_s:.1f}/s, fulfilled {seen.fulfilled_per_s:.1f}/s,"
                f" {seen.statuses}: {'sustained' if seen.sustained else 'not sustained'}",
                flush=True,
            )
            if not seen.sustained or (best and seen.accepted_per_s <= best.accepted_per_s * 1.02):
                break
            best = seen
            rate *= GROWTH
            time.sleep(10)  # the autoscaler's pools settle, the backlog drains
        easy = overload = None
        if best is not None:
            time.sleep(30)
            print(f"  {variant}: 80 % of {best.accepted_per_s:.0f}/s", flush=True)
            easy = window(platform, orders, 0.8 * best.accepted_per_s, seconds, work)
            time.sleep(30)
            print(f"  {variant}: twice {best.accepted_per_s:.0f}/s", flush=True)
            overload = window(platform, orders, 2 * best.accepted_per_s, seconds, work)
    return Finding(variant, steps, best, easy, overload)


def _tracing_cost(findings: list[Finding]) -> list[str]:
    """Tracing on ÷ off for each database both were run on: the sustainable rates, and the
    CPU per complete order the other way round (both 1.0 when tracing costs nothing)."""
    found = {f.variant: f.sustainable for f in findings if f.sustainable}
    lines = []
    for database in ("sqlite", "postgres"):
        on, off = found.get(f"traced-{database}"), found.get(f"untraced-{database}")
        if on and off:
            lines.append(
                f"tracing on ÷ off ({database}): sustainable rate "
                f"{on.fulfilled_per_s / off.fulfilled_per_s:.2f}x, CPU per order (off ÷ on) "
                f"{off.all_cpu_ms / on.all_cpu_ms:.2f}x"
            )
    return ["", *lines] if lines else []


def report(findings: list[Finding]) -> str:
    lines = [
        "| variant | sustainable: complete orders/s | 202 p50 / p95 / p99 | 202 to fulfilled "
        "p50 / p95 | orders queue wait p95 | CPU ms per order (path / all) | spans per order "
        "| spans dropped | PostgreSQL server CPU ms per order |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in findings:
        s = f.sustainable
        if s is None:
            lines.append(f"| {f.variant} | not even the first step | | | | | | | |")
            continue
        lines.append(
            f"| {f.variant} | {s.fulfilled_per_s:.1f} (offered {s.offered_per_s:.0f}) | "
            f"{s.p50_ms:.0f} / {s.p95_ms:.0f} / {s.p99_ms:.0f} ms | "
            f"{s.to_fulfilled_p50_ms:.0f} / {s.to_fulfilled_p95_ms:.0f} ms | "
            f"{s.queue_wait_p95_ms:.0f} ms | {s.path_cpu_ms:.1f} / {s.all_cpu_ms:.1f} | "
            f"{s.spans_per_order:.1f} | {s.spans_dropped} | {s.database_server_cpu_ms:.1f} |"
        )
    lines += _tracing_cost(findings)
    kinds = sorted({k for f in findings if f.sustainable for k in f.sustainable.cpu_ms_per_order})
    lines += ["", "CPU ms per complete order at the sustainable rate, by kind of process:", ""]
    lines += ["| variant | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for f in findings:
        if f.sustainable:
            cpu = f.sustainable.cpu_ms_per_order
            lines.append(
                f"| {f.variant} | " + " | ".join(f"{cpu.get(k, 0):.1f}" for k in kinds) + " |"
            )
    lines += [
        "",
        "| variant | window | offered/s | accepted/s | fulfilled/s | answers | 202 p99 "
        "| failed after acceptance | queue wait p95 |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for f in findings:
        named: list[tuple[str, Window | None]] = [
            (f"step {i + 1}", w) for i, w in enumerate(f.steps)
        ]
        named += [("80 %", f.easy), ("2x", f.overload)]
        for name, w in named:
            if w is None:
                continue
            lines.append(
                f"| {f.variant} | {name} | {w.offered_per_s:.0f} | {w.accepted_per_s:.1f} | "
                f"{w.fulfilled_per_s:.1f} | {w.statuses} | {w.p99_ms:.0f} ms | "
                f"{w.failed_orders} | {w.queue_wait_p95_ms:.0f} ms |"
            )
    return "\n".join(lines)
