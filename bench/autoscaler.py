"""How fast and how economically worker pools follow a bursty load.

(a) ``--live``: the real local platform (``flotilla up`` on free ports): bursts of orders through
    the edge, and the time from each burst's first order to the pool's first scale-up (the
    supervisor logs every decision); p50/p95 over the bursts.
(b) the simulation (default): one bursty arrival trace replayed through Flotilla's policy
    (``flotilla.operator.decide``, polling every 2 s, depth = ready + in-flight) and through an
    emulation of KEDA + HPA defaults (KEDA polls the list length every 30 s, the HPA syncs every
    15 s with a 0.1 tolerance, scales up by at most max(100 %, 4 pods) per 15 s and down after a
    300 s stabilization window). Same workers (10 messages/s each, 5 s to start), same bounds.

    uv run python bench/autoscaler.py            # simulation
    uv run python bench/autoscaler.py --live     # real processes (about 3 minutes)
"""

from __future__ import annotations

import argparse
import math
import random
import re
import signal
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _support import start_platform
from flotilla.operator import History, Observation, QueueDepth, ScalingSpec, decide

DT = 0.5
RATE_PER_WORKER = 10.0
STARTUP_S = 5.0
MIN, MAX, TARGET = 1, 30, 20


def arrivals(duration_s: float, seed: int = 7) -> list[float]:
    """A steady trickle (3/s) plus a burst of 400-900 messages over 10 s every 4-6 minutes."""
    rng = random.Random(seed)
    times, t = [], 0.0
    while t < duration_s:
        t += rng.expovariate(3.0)
        times.append(t)
    burst = 60.0
    while burst < duration_s - 60:
        size = rng.randint(400, 900)
        times += [burst + rng.uniform(0, 10) for _ in range(size)]
        burst += rng.uniform(240, 360)
    return sorted(times)


@dataclass
class Pool:
    replicas: int = MIN
    starting: deque[float] = field(default_factory=deque)  # ready times of new replicas
    waits: list[float] = field(default_factory=list)
    replica_seconds: float = 0.0
    peak: int = MIN

    def set_desired(self, desired: int, now: float) -> None:
        running = self.replicas + len(self.starting)
        for _ in range(desired - running):
            self.starting.append(now + STARTUP_S)
        while desired < self.replicas + len(self.starting):
            if self.starting:
                self.starting.pop()
            else:
                self.replicas -= 1


def simulate(policy: str, times: list[float], duration_s: float) -> Pool:
    pool, queue, in_flight = Pool(), deque[float](), 0.0
    history, hpa_recent = History(), deque[tuple[float, int]]()
    keda_metric, arrivals_iter, next_arrival = 0, iter(times), None
    next_arrival = next(arrivals_iter, None)
    now = 0.0
    while now < duration_s:
        while next_arrival is not None and next_arrival <= now:
            queue.append(next_arrival)
            next_arrival = next(arrivals_iter, None)
        while pool.starting and pool.starting[0] <= now:
            pool.starting.popleft()
            pool.replicas += 1
        capacity = pool.replicas * RATE_PER_WORKER * DT
        served = 0
        while queue and served < capacity:
            pool.waits.append(now - queue.popleft())
            served += 1
        in_flight = min(served, pool.replicas * RATE_PER_WORKER)  # busy workers this tick
        current = pool.replicas + len(pool.starting)
        tick = round(now / DT)
        if policy == "flotilla" and tick % round(2 / DT) == 0:
            depth = QueueDepth(ready=len(queue), in_flight=int(in_flight))
            spec = ScalingSpec(
                min_replicas=MIN,
                max_replicas=MAX,
                target_per_replica=TARGET,
                scale_up_max_step=8,
                scale_down_window_s=60,
            )
            decision = decide(spec, Observation(current, depth), history, now)
            history = decision.history
            pool.set_desired(decision.desired, now)
        if policy == "keda" and tick % round(30 / DT) == 0:
            keda_metric = len(queue)  # the list length only: in-flight work is invisible
        if policy == "keda" and tick % round(15 / DT) == 0:
            wanted = max(MIN, min(MAX, math.ceil(keda_metric / TARGET)))
            if current and abs(wanted / current - 1) <= 0.1:
                wanted = current
            hpa_recent.append((now, wanted))
            while hpa_recent and hpa_recent[0][0] < now - 300:
                hpa_recent.popleft()
            if wanted > current:
                wanted = min(wanted, max(2 * current, current + 4))
            elif wanted < current:
                wanted = max(r for _, r in hpa_recent)  # 300 s stabilization
            pool.set_desired(min(wanted, MAX), now)
        pool.replica_seconds += (pool.replicas + len(pool.starting)) * DT
        pool.peak = max(pool.peak, pool.replicas + len(pool.starting))
        now += DT
    pool.waits += [duration_s - t for t in queue]  # never served: waited until the end
    return pool


def run_simulation(console: Console, duration_s: float) -> None:
    times = arrivals(duration_s)
    results = {name: simulate(name, times, duration_s) for name in ("flotilla", "keda")}
    table = Table(
        title=f"{len(times):,} messages over {duration_s / 60:.0f} min, bursts of "
        f"400-900; workers 10 msg/s, 5 s to start; bounds {MIN}-{MAX}, "
        f"{TARGET}/replica"
    )
    for column in ("policy", "p50 wait", "p95 wait", "max wait", "replica-seconds", "peak"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, label in (
        ("flotilla", "Flotilla (2 s poll, depth incl. in-flight, 60 s window)"),
        ("keda", "KEDA + HPA defaults (30 s poll, 15 s sync, 300 s window)"),
    ):
        pool = results[name]
        q = statistics.quantiles(pool.waits, n=100)
        table.add_row(
            label,
            f"{q[49]:.1f} s",
            f"{q[94]:.1f} s",
            f"{max(pool.waits):.1f} s",
            f"{pool.replica_seconds:,.0f}",
            str(pool.peak),
        )
    console.print(table)
    f, k = results["flotilla"], results["keda"]
    console.print(
        f"p95 wait: Flotilla {statistics.quantiles(f.waits, n=100)[94]:.1f} s vs KEDA+HPA "
        f"{statistics.quantiles(k.waits, n=100)[94]:.1f} s; replica-seconds ratio "
        f"{f.replica_seconds / k.replica_seconds:.2f}x"
    )


def burst(edge: str, api_key: str, orders: int) -> float:
    """Place ``orders`` orders with 16 concurrent clients; returns when the first one was sent."""
    import asyncio

    import httpx

    body = {"customer_email": "bench@example.com", "items": [{"sku": "FLT-DRYBAG", "quantity": 1}]}

    async def run() -> float:
        async with httpx.AsyncClient(
            base_url=edge, timeout=30, headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            await client.get("/api/inventory/products")  # a warm connection, before the clock
            remaining = iter(range(orders))
            first = time.monotonic()

            async def worker() -> None:
                for _ in remaining:
                    await client.post("/api/orders", json=body)

            await asyncio.gather(*(worker() for _ in range(16)))
            return first

    return asyncio.run(run())


def run_live(console: Console, bursts: int, orders: int) -> None:
    platform = start_platform(
        "flotilla-autoscale-",
        {"FLOTILLA_CLI_POOL_SCALE_DOWN_WINDOW_S": "10", "FLOTILLA_CLI_POOL_MAX": "4"},
    )
    up, var, ports, events = platform.process, platform.var, platform.ports, platform.events
    reactions = []
    try:
        for n in range(1, bursts + 1):
            console.log(f"burst {n}/{bursts}: {orders} orders")
            started = burst(
                f"http://127.0.0.1:{ports['edge']}",
                (var / "local" / "api-key").read_text().strip(),
                orders,
            )
            ups = [
                t
                for t, line in events
                if t >= started and re.search(r"orders-worker scale-up", line)
            ]
            if ups:
                reactions.append(ups[0] - started)
            deadline = time.monotonic() + 90  # back to one replica before the next burst
            while time.monotonic() < deadline and not any(
                t >= started and "orders-worker scale-down" in line and "→1:" in line
                for t, line in events
            ):
                time.sleep(0.5)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    q = (
        statistics.quantiles(reactions, n=20, method="inclusive")
        if len(reactions) > 1
        else reactions * 19
    )
    console.print(
        f"time from a burst's first order to the first scale-up of orders-worker, "
        f"{len(reactions)} of {bursts} bursts: p50 {statistics.median(reactions):.2f} s, "
        f"p95 {q[18]:.2f} s, max {max(reactions):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--orders", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=30)
    args = parser.parse_args()
    console = Console(width=140)
    if args.live:
        run_live(console, args.bursts, args.orders)
    else:
        run_simulation(console, args.minutes * 60)


if __name__ == "__main__":
    main()
