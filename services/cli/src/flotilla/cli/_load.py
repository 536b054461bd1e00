"""``flotilla load``: a bounded burst of orders through the edge, with a progress bar."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    order_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    fulfil_s: list[float] = field(default_factory=list)

    def percentile(self, values: list[float], q: float) -> float:
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
    """Place ``orders`` orders with ``concurrency`` workers; optionally wait for fulfilment."""
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
            for _ in remaining:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                try:
                    answer = await client.post("/api/orders", json=body)
                    status = answer.status_code
                except httpx.HTTPError:
                    status = 0
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] += 1
                if status == 202:
                    order_id = answer.json()["id"]
                    result.order_ids.append(order_id)
                    placed_at[order_id] = time.monotonic()
                progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started

        if wait and result.order_ids:
            waiting = progress.add_task("waiting for fulfilment", total=len(result.order_ids))
            pending = set(result.order_ids)
            while pending and time.monotonic() < deadline:
                for order_id in list(pending)[:50]:
                    answer = await client.get(f"/api/orders/{order_id}")
                    if answer.status_code == 200 and answer.json()["status"] != "accepted":
                        pending.discard(order_id)
                        result.fulfil_s.append(time.monotonic() - placed_at[order_id])
                        progress.advance(waiting)
                await asyncio.sleep(0.1)
    return result


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
