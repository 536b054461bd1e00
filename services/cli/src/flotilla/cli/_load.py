"""``flotilla load``: a bounded burst of orders through the edge, with a progress bar."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from flotilla.contracts import OrderStatus

#: the statuses an order never leaves (``flotilla.contracts.TRANSITIONS``)
FINAL_STATUSES = frozenset(status for status in OrderStatus if status.final)


@dataclass
class LoadResult:
    """What a load run saw: one latency and one status code per attempt."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no answer at all
    order_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    fulfil_s: list[float] = field(default_factory=list)  # placed → fulfilled, per order
    outcomes: Counter[str] = field(default_factory=Counter)  # final order statuses seen

    @property
    def throughput(self) -> float:
        """Answered attempts per second of the placing phase."""
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        """The ``q``-th percentile (inclusive method); NaN when there are no values."""
        if not values:
            return float("nan")
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def place_orders(
    *,
    edge_url: str,
    api_key: str,
    orders: int,
    concurrency: int,
    sku: str,
    progress: Progress,
    wait: bool,
    timeout_s: float,
) -> LoadResult:
    """Place ``orders`` orders with ``concurrency`` workers; optionally wait for fulfilment.

    Everything stops at ``timeout_s`` after the start, placed or not.
    """
    result = LoadResult()
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"customer_email": "load@example.com", "items": [{"sku": sku, "quantity": 1}]}
    placed_at: dict[str, float] = {}
    task = progress.add_task("placing orders", total=orders)
    remaining = iter(range(orders))
    deadline = time.monotonic() + timeout_s

    async with httpx.AsyncClient(
        base_url=edge_url,
        headers=headers,
        timeout=30,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:

        async def one_worker() -> None:
            # NOTE: the workers share one iterator, so together they place exactly `orders`.
            for _ in remaining:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                status, order_id = 0, None  # 0: no answer at all
                try:
                    answer = await client.post("/api/orders", json=body)
                    status = answer.status_code
                    if status == 202:
                        order_id = str(answer.json()["id"])
                except httpx.HTTPError:
                    pass  # counted as "no answer"
                except (ValueError, KeyError):
                    pass  # a 202 without an order id: counted by its status, never waited for
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] += 1
                if order_id is not None:
                    result.order_ids.append(order_id)
                    placed_at[order_id] = time.monotonic()
                progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started

        if wait and result.order_ids:
            await _await_outcomes(client, result, placed_at, progress, concurrency, deadline)
    return result


async def _await_outcomes(
    client: httpx.AsyncClient,
    result: LoadResult,
    placed_at: dict[str, float],
    progress: Progress,
    concurrency: int,
    deadline: float,
) -> None:
    """Poll every placed order until it reaches a final status (or the deadline)."""
    waiting = progress.add_task("waiting for fulfilment", total=len(result.order_ids))
    pending = set(result.order_ids)
    gate = asyncio.Semaphore(concurrency)

    async def look(order_id: str) -> None:
        async with gate:
            try:
                answer = await client.get(f"/api/orders/{order_id}")
                status = answer.json()["status"] if answer.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError):
                return  # asked again on the next round
        if status in FINAL_STATUSES:
            pending.discard(order_id)
            result.outcomes[status] += 1
            if status == OrderStatus.FULFILLED:
                result.fulfil_s.append(time.monotonic() - placed_at[order_id])
            progress.advance(waiting)

    while pending and time.monotonic() < deadline:
        await asyncio.gather(*(look(order_id) for order_id in list(pending)))
        if pending:
            await asyncio.sleep(0.2)
    if pending:
        result.outcomes["still accepted at the deadline"] += len(pending)


def run_load(
    *,
    edge_url: str,
    api_key: str,
    orders: int,
    concurrency: int,
    sku: str,
    wait: bool,
    timeout_s: float,
) -> LoadResult:
    """:func:`place_orders` with a progress bar on the terminal."""
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        return asyncio.run(
            place_orders(
                edge_url=edge_url,
                api_key=api_key,
                orders=orders,
                concurrency=concurrency,
                sku=sku,
                progress=progress,
                wait=wait,
                timeout_s=timeout_s,
            )
        )


def load_table(result: LoadResult, *, title: str) -> Table:
    """Throughput, latency percentiles, answers and (when waited for) time to fulfilled."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("throughput", f"{result.throughput:,.1f} orders/s")
    for q in (50, 95, 99):
        table.add_row(f"latency p{q}", f"{result.percentile(result.latencies_s, q) * 1000:.1f} ms")
    table.add_row(
        "answers",
        ", ".join(f"{code or 'no answer'}: {n}" for code, n in sorted(result.statuses.items())),
    )
    if result.outcomes:
        table.add_row("fulfilled", f"{len(result.fulfil_s)} of {len(result.order_ids)}")
        table.add_row("outcomes", ", ".join(f"{k}: {n}" for k, n in result.outcomes.most_common()))
        for q in (50, 95, 99):
            seconds = result.percentile(result.fulfil_s, q)
            table.add_row(f"time to fulfilled p{q}", f"{seconds * 1000:.0f} ms")
    return table
