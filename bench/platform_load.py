"""The whole platform under load: orders per second through the edge, side by side.

    uv run python bench/platform_load.py                      # every variant, 4 and 32 connections
    uv run python bench/platform_load.py --seconds 60 --connections 32 --variants traced-sqlite
    uv run python bench/platform_load.py --rounds 3           # medians of 3 loads per count
    uv run python bench/platform_load.py --sustainable        # the sustainable rate

Each variant starts its own ``flotilla up`` on free ports (a throwaway Redis, fresh databases)
and drives it with ``wrk`` (Debian's package) posting orders with a unique ``Idempotency-Key``
each, for a fixed time at each connection count. Reported per run, in one table:

- accepted orders/s (202s), p50/p95/p99 of the answer, non-2xx answers and socket errors;
- fulfilled orders/s over the same window (orders whose status turned ``fulfilled`` while the
  load ran, from the orders database) and the time from 202 to ``fulfilled`` of orders sampled
  every 250 ms by a separate client (p50/p95);
- CPU milliseconds per accepted order for each kind of process (utime + stime from ``/proc``,
  worker replicas summed), spans per order (from the console's store), each process's RSS.

Variants: ``traced-sqlite`` (the local default, tracing at 100 %), ``untraced-sqlite``
(``OTEL_SDK_DISABLED=true`` everywhere), ``traced-postgres`` and ``untraced-postgres`` (the
services' databases on the machine's PostgreSQL, as in the cluster; ``FLOTILLA_BENCH_POSTGRES``
names the server). Ratios are printed against ``traced-sqlite`` at the same connection count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.local_platform import FlotillaUp
from tests.support.redis_server import throwaway_redis

POSTGRES = os.environ.get(
    "FLOTILLA_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ORDER = {"customer_email": "bench@example.com", "items": [{"sku": "FLT-PADDLE", "quantity": 1}]}
VARIANTS = {
    "traced-sqlite": {"tracing": True, "database": "sqlite"},
    "untraced-sqlite": {"tracing": False, "database": "sqlite"},
    "traced-postgres": {"tracing": True, "database": "postgres"},
    "untraced-postgres": {"tracing": False, "database": "postgres"},
}
LUA = """
local counter = 0
local prefix = ""
function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000000)))
end
function init(args)
  prefix = "bench-RUN_ID-" .. id .. "-"
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/api/orders", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(key)s",
    ["Idempotency-Key"] = prefix .. counter,
  }, '%(body)s')
end
function done(summary, latency, requests)
  io.write("RESULT ", string.format(
    '{"requests": %%d, "duration_us": %%d, "non2xx": %%d, "errors": %%d, '
    .. '"p50": %%d, "p95": %%d, "p99": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass
class Run:
    variant: str
    connections: int
    seconds: float
    accepted_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    fulfilled_per_s: float
    to_fulfilled_p50_ms: float
    to_fulfilled_p95_ms: float
    spans_per_order: float
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    #: worker processes of each pool that ran during the window (the autoscaler's doing)
    replicas: dict[str, float] = field(default_factory=dict)


def _kind(name: str) -> str:
    """A process's kind: ``orders-worker-2`` -> ``orders-worker``."""
    head, _, tail = name.rpartition("-")
    return head if tail.isdigit() else name


def _processes(platform: FlotillaUp) -> dict[str, psutil.Process]:
    found = {}
    for name, pid in platform.pids("").items():
        try:
            found[name] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds so far per process (a replica that died keeps its last reading)."""
    seen = {}
    for name, process in processes.items():
        try:
            times = process.cpu_times()
            seen[name] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return seen


def _ms_to_fulfilled(
    client: Any, order: str, started: float, limit_s: float, poll_s: float
) -> float | None:
    """Milliseconds from ``started`` until ``order`` reads ``fulfilled`` (None past
    ``limit_s``), polling every ``poll_s``."""
    while time.monotonic() - started < limit_s:
        if client.get(f"/api/orders/{order}").json()["status"] == "fulfilled":
            return (time.monotonic() - started) * 1000
        time.sleep(poll_s)
    return None


class Sampler:
    """Places an order every 250 ms and times it from 202 to ``fulfilled``."""

    def __init__(self, platform: FlotillaUp) -> None:
        self.platform, self.times_ms = platform, []
        self.placed = 0  # orders it placed that were accepted
        self.traces: list[str] = []  # their trace ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with self.platform.client(timeout_s=30) as client:
            while not self._stop.wait(0.25):
                started = time.monotonic()
                answer = client.post("/api/orders", json=ORDER)
                if answer.status_code != 202:
                    continue
                self.placed += 1
                self.traces.append(answer.headers.get("X-Trace-Id", ""))
                took = _ms_to_fulfilled(client, answer.json()["id"], started, 60, 0.01)
                if took is not None:
                    self.times_ms.append(took)


@dataclass
class Idle:
    """One order at a time on the idle platform: what a single caller sees."""

    variant: str
    orders: int
    answer_ms: list[float] = field(default_factory=list)
    queue_wait_ms: list[float] = field(default_factory=list)
    to_fulfilled_ms: list[float] = field(default_factory=list)
    #: spans per order by (service, span name), averaged over the idle orders' traces
    spans: dict[tuple[str, str], float] = field(default_factory=dict)
    span_ms: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def idle(platform: FlotillaUp, variant: str, orders: int) -> Idle:
    """Place ``orders`` orders one after another (each once the last is fulfilled, 0.3 s apart):
    the answer through the edge, and from the trace the fulfilment message's queue wait (its
    CONSUMER span's ``messaging.dramatiq.queue_wait_ms``: enqueued to taken by a worker)."""
    seen = Idle(variant, orders)
    traces = []
    with platform.client(timeout_s=30) as client:
        for _ in range(orders):
            time.sleep(0.3)
            started = time.monotonic()
            answer = client.post("/api/orders", json=ORDER)
            seen.answer_ms.append((time.monotonic() - started) * 1000)
            if answer.status_code != 202:
                continue
            traces.append(answer.headers.get("X-Trace-Id", ""))
            took = _ms_to_fulfilled(client, answer.json()["id"], started, 30, 0.005)
            if took is not None:
                seen.to_fulfilled_ms.append(took)
    time.sleep(2)  # the exporters' last batches reach the console
    with sqlite3.connect(platform.var_dir / "console.db") as db:
        for trace in traces:
            for (attributes,) in db.execute(
                "SELECT attributes FROM spans WHERE trace_id = ? AND kind = 'CONSUMER' "
                "AND name = 'process orders'",
                (trace,),
            ):
                wait = json.loads(attributes).get("messaging.dramatiq.queue_wait_ms")
                if wait is not None:
                    seen.queue_wait_ms.append(float(wait))
            for service, name, start_ns, end_ns in db.execute(
                "SELECT service, name, start_ns, end_ns FROM spans WHERE trace_id = ?", (trace,)
            ):
                key = (service, name)
                seen.spans[key] = seen.spans.get(key, 0.0) + 1 / max(1, len(traces))
                seen.span_ms.setdefault(key, []).append((end_ns - start_ns) / 1e6)
    return seen


IDLES: list[Idle] = []


def idle_table(idles: list[Idle]) -> str:
    lines = [
        "One order at a time (idle platform): p50 / p95",
        "",
        "| variant | orders | answer through the edge | fulfilment message's queue wait "
        "| 202 to fulfilled |",
        "|---|---:|---:|---:|---:|",
    ]
    for i in idles:

        def both(values: list[float]) -> str:
            return f"{_percentile(values, 0.5):.1f} / {_percentile(values, 0.95):.1f} ms"

        lines.append(
            f"| {i.variant} | {i.orders} | {both(i.answer_ms)} | {both(i.queue_wait_ms)} "
            f"| {both(i.to_fulfilled_ms)} |"
        )
    for i in idles:
        lines += ["", f"Spans of one order's trace ({i.variant}): {sum(i.spans.values()):.1f}", ""]
        lines += ["| service | span | per order | p50 each |", "|---|---|---:|---:|"]
        for (service, name), count in sorted(i.spans.items(), key=lambda kv: -kv[1]):
            each = _percentile(i.span_ms.get((service, name), []), 0.5)
            lines.append(f"| {service} | {name} | {count:.1f} | {each:.2f} ms |")
    return "\n".join(lines)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextmanager
def _platform(variant: str, work: Path) -> Iterator[tuple[FlotillaUp, sa.Engine]]:
    options = VARIANTS[variant]
    env = {
        # the load, not the autoscaler's start-up, is what is measured: pools as in `make run`
        "FLOTILLA_CLI_PAYMENT_LATENCY_MS": "0",
    }
    if not options["tracing"]:
        env["OTEL_SDK_DISABLED"] = "true"
    databases: list[str] = []
    admin = None
    if options["database"] == "postgres":
        admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        suffix = uuid.uuid4().hex[:8]
        with admin.connect() as conn:
            for service in ("orders", "inventory", "payments"):
                databases.append(f"bench_{suffix}_{service}")
                conn.execute(sa.text(f'CREATE DATABASE "bench_{suffix}_{service}"'))
        template = sa.make_url(POSTGRES).set(database=f"bench_{suffix}_{{service}}")
        env["FLOTILLA_CLI_DATABASE_URL_TEMPLATE"] = template.render_as_string(hide_password=False)
        orders_url = template.render_as_string(hide_password=False).replace("{service}", "orders")
    else:
        orders_url = f"sqlite:///{work / 'var' / 'orders.db'}"
    with throwaway_redis() as redis:
        platform = FlotillaUp(work / "var", redis.url, env=env).start()
        orders = sa.create_engine(orders_url)
        try:
            yield platform, orders
        finally:
            orders.dispose()
            platform.stop()
            if admin is not None:
                with admin.connect() as conn:
                    for name in databases:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def _fulfilled(orders: sa.Engine) -> int:
    with orders.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM orders WHERE status = 'fulfilled'")
            ).scalar_one()
        )


def _spans(platform: FlotillaUp) -> int:
    with sqlite3.connect(platform.var_dir / "console.db") as db:
        return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])


def _wrk(platform: FlotillaUp, connections: int, seconds: float, script: Path) -> dict[str, Any]:
    # NOTE: a fresh prefix for the Idempotency-Keys of every run: Lua's unseeded random ids
    # repeat from one wrk to the next, and a repeated key is a replay, not a new order (the
    # figures before 2026-12-06 counted replays as accepted orders)
    this_run = script.with_suffix(".run.lua")
    this_run.write_text(script.read_text().replace("RUN_ID", uuid.uuid4().hex))
    script = this_run
    done = subprocess.run(
        ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds:.0f}s",
         "--latency", "--timeout", "10s", "-s", str(script), platform.edge],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


class Profile:
    """``py-spy record`` of one process while the load runs; its hottest frames."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}",
             "--rate", "50", "--gil", "--format", "raw", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def report(self, top: int = 18) -> str:
        self.process.wait(120)
        own: dict[str, int] = defaultdict(int)
        inclusive: dict[str, int] = defaultdict(int)
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():  # NOTE: a frame name broken over two lines
                continue
            frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";")]
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
        lines = [f"{total} samples; own time:"]
        for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {100 * count / total:5.1f}%  {frame}")
        lines.append("inclusive time:")
        for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {100 * count / total:5.1f}%  {frame}")
        return "\n".join(lines)


PROFILES: list[str] = []


def measure(
    variant: str,
    connections: list[int],
    seconds: float,
    profile: list[str] = (),  # type: ignore[assignment]
    idle_orders: int = 0,
    rounds: int = 1,
) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-") as folder:
        work = Path(folder)
        with _platform(variant, work) as (platform, orders):
            script = work / "orders.lua"
            body = json.dumps(ORDER).replace("'", "\\'")
            script.write_text(LUA % {"key": platform.api_key, "body": body})
            _wrk(platform, 4, 3, script)  # warm up: connections, caches, first pools
            time.sleep(3)
            if idle_orders:
                IDLES.append(idle(platform, variant, idle_orders))
            profiled = False  # NOTE: the first round at the largest count only
            for count in [c for _ in range(rounds) for c in connections]:
                processes = _processes(platform)
                cpu_before, fulfilled_before, spans_before = (
                    _cpu(processes),
                    _fulfilled(orders),
                    _spans(platform),
                )
                profilers = {}
                if count == max(connections) and not profiled:
                    profiled = True
                    for kind in profile:
                        pid = next(p.pid for n, p in processes.items() if _kind(n) == kind)
                        profilers[kind] = Profile(pid, seconds, work / f"{kind}.txt")
                with Sampler(platform) as sampler:
                    started = time.monotonic()
                    result = _wrk(platform, count, seconds, script)
                    elapsed = time.monotonic() - started
                for kind, profiler in profilers.items():
                    PROFILES.append(
                        f"py-spy of {kind} ({variant}, {count} connections): " + profiler.report()
                    )
                fulfilled_after = _fulfilled(orders)
                processes.update(_processes(platform))  # replicas started during the load
                cpu_after = _cpu(processes)
                accepted = result["requests"] - result["non2xx"]
                per_kind: dict[str, float] = defaultdict(float)
                for name, after in cpu_after.items():
                    per_kind[_kind(name)] += after - cpu_before.get(name, 0.0)
                rss: dict[str, float] = defaultdict(float)
                for name, process in processes.items():
                    try:
                        rss[_kind(name)] = max(rss[_kind(name)], process.memory_info().rss / 1e6)
                    except psutil.NoSuchProcess:
                        continue
                time.sleep(2)  # the exporters' last batches reach the console
                spans = _spans(platform) - spans_before
                orders_in_window = accepted + len(sampler.times_ms)
                runs.append(
                    Run(
                        variant=variant,
                        connections=count,
                        seconds=elapsed,
                        accepted_per_s=accepted / (result["duration_us"] / 1e6),
                        p50_ms=result["p50"] / 1000,
                        p95_ms=result["p95"] / 1000,
                        p99_ms=result["p99"] / 1000,
                        non2xx=result["non2xx"],
                        errors=result["errors"],
                        fulfilled_per_s=(fulfilled_after - fulfilled_before) / elapsed,
                        to_fulfilled_p50_ms=_percentile(sampler.times_ms, 0.5),
                        to_fulfilled_p95_ms=_percentile(sampler.times_ms, 0.95),
                        spans_per_order=spans / max(1, orders_in_window),
                        cpu_ms_per_order={
                            kind: 1000 * value / max(1, orders_in_window)
                            for kind, value in sorted(per_kind.items())
                            if kind not in ("redis",)
                        },
                        rss_mb=dict(sorted(rss.items())),
                        replicas={
                            kind: sum(1 for name in processes if _kind(name) == kind)
                            for kind in sorted({_kind(n) for n in processes})
                            if kind.endswith("-worker")
                        },
                    )
                )
                print(
                    f"  {variant} at {count} connections: {runs[-1].accepted_per_s:.0f} orders/s",
                    flush=True,
                )
                time.sleep(5)  # let the backlog drain before the next count
    return runs


def median_runs(runs: list[Run]) -> list[Run]:
    """One run per (variant, connections): the median of each figure over its rounds."""
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.variant, run.connections)].append(run)
    merged = []
    for (variant, count), same in groups.items():

        def mid(values: list[float]) -> float:
            return statistics.median(values)

        def mid_of(maps: list[dict[str, Any]]) -> dict[str, Any]:
            keys = sorted({k for m in maps for k in m})
            return {k: mid([m.get(k, 0) for m in maps]) for k in keys}

        numbers = {
            name: mid([getattr(r, name) for r in same])
            for name, value in vars(same[0]).items()
            if isinstance(value, (int, float)) and name != "connections"
        }
        merged.append(
            Run(
                variant=variant,
                connections=count,
                **numbers,
                cpu_ms_per_order=mid_of([r.cpu_ms_per_order for r in same]),
                rss_mb=mid_of([r.rss_mb for r in same]),
                replicas=mid_of([r.replicas for r in same]),
            )
        )
    return merged


def table(runs: list[Run]) -> str:
    runs = median_runs(runs)
    base = {r.connections: r for r in runs if r.variant == "traced-sqlite"}
    lines = [
        "| variant | conns | accepted/s | vs traced-sqlite | p50 | p95 | p99 | non-2xx | errors "
        "| fulfilled/s | to fulfilled p50 / p95 | spans/order | worker processes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        ratio = (
            r.accepted_per_s / base[r.connections].accepted_per_s
            if r.connections in base
            else float("nan")
        )
        lines.append(
            f"| {r.variant} | {r.connections} | {r.accepted_per_s:.0f} | {ratio:.2f}x | "
            f"{r.p50_ms:.0f} ms | {r.p95_ms:.0f} ms | {r.p99_ms:.0f} ms | {r.non2xx} | "
            f"{r.errors} | {r.fulfilled_per_s:.0f} | "
            f"{r.to_fulfilled_p50_ms:.0f} / {r.to_fulfilled_p95_ms:.0f} ms | "
            f"{r.spans_per_order:.1f} | "
            + ", ".join(f"{k.removesuffix('-worker')} {n:g}" for k, n in r.replicas.items())
            + " |"
        )
    kinds = sorted({k for r in runs for k in r.cpu_ms_per_order})
    lines += ["", "CPU ms per order, by process (all replicas), and the largest RSS (MB):", ""]
    lines.append("| variant | conns | " + " | ".join(kinds) + " | total |")
    lines.append("|---|---:|" + "---:|" * (len(kinds) + 1))
    for r in runs:
        cells = [f"{r.cpu_ms_per_order.get(k, 0):.1f}" for k in kinds]
        total = sum(r.cpu_ms_per_order.values())
        lines.append(
            f"| {r.variant} | {r.connections} | " + " | ".join(cells) + f" | {total:.1f} |"
        )
    lines += ["", "| variant | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    seen = {}
    for r in runs:
        seen[r.variant] = r.rss_mb
    for variant, rss in seen.items():
        lines.append(f"| {variant} | " + " | ".join(f"{rss.get(k, 0):.0f}" for k in kinds) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, help="per load (default 20; --sustainable: 60)")
    parser.add_argument(
        "--sustainable", action="store_true",
        help="find the highest rate completed as fast as accepted (bench/sustainable.py)",
    )  # fmt: skip
    parser.add_argument("--start-rate", type=float, default=10, help="--sustainable's first rate")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="load each connection count this many times on the same platform; medians shown",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the runs as JSON here")
    parser.add_argument(
        "--idle", type=int, default=20, metavar="N",
        help="first, N orders one at a time on the idle platform (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", nargs="*", default=[], metavar="PROCESS",
        help="py-spy these processes (e.g. orders-worker edge) at the largest connection count",
    )  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1
    if args.sustainable:
        from bench.sustainable import find, report

        findings = []
        for variant in args.variants:
            with tempfile.TemporaryDirectory(prefix="flotilla-bench-") as folder:
                findings.append(find(variant, args.seconds or 60, args.start_rate, Path(folder)))
        print("\n" + report(findings))
        return 0
    args.seconds = args.seconds or 20
    runs: list[Run] = []
    for variant in args.variants:
        print(f"{variant}: starting the platform", flush=True)
        runs += measure(
            variant, args.connections, args.seconds, args.profile, args.idle, args.rounds
        )
    print()
    print(table(runs))
    if IDLES:
        print("\n" + idle_table(IDLES))
    for text in PROFILES:
        print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
