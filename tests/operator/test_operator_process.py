"""``python -m flotilla.operator`` as a real process: liveness, Prometheus metrics, SIGTERM, and
two replicas sharing the work through kopf peering.

The Kubernetes API is kmock's KubernetesEmulator (no API server can run here), reached over
real HTTP through ``FLOTILLA_OPERATOR_API_URL``; Redis and the Dramatiq messages are real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.cluster import (
    NS,
    PEERINGS,
    autoscaler,
    create,
    declare,
    eventually,
    fill,
    plain,
    replicas,
)
from tests.support.ports import free_port

PEERING = "flotilla-operator"


class OperatorProcess:
    def __init__(self, proc: asyncio.subprocess.Process, liveness: int, metrics: int) -> None:
        self.proc, self.liveness, self.metrics = proc, liveness, metrics
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read_log())

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.log)

    async def get(self, port: int, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(f"http://127.0.0.1:{port}{path}")

    async def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The values of one metric family, keyed by their sorted labels."""
        text = (await self.get(self.metrics, "/metrics")).text
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


@asynccontextmanager
async def operator(kmock: Any, *args: str) -> AsyncIterator[OperatorProcess]:
    liveness, metrics = free_port(), free_port()
    env = {
        **os.environ,
        "FLOTILLA_OPERATOR_API_URL": str(kmock.url).rstrip("/"),
        "OTEL_TRACES_EXPORTER": "none",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flotilla.operator",
        "--namespace",
        NS,
        "--liveness-port",
        str(liveness),
        "--metrics-port",
        str(metrics),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = OperatorProcess(proc, liveness, metrics)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        running._reader.cancel()


async def answers(check: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Wait until an async check stops raising connection errors and returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            value = await check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("no answer in time")


def peers(kmock: Any) -> dict[str, Any]:
    status: dict[str, Any] = plain(kmock.objects[PEERINGS, NS, PEERING]).get("status") or {}
    return {k: v for k, v in status.items() if v}


@pytest.mark.asyncio
async def test_the_process_serves_liveness_and_metrics_and_stops_on_sigterm(
    kmock: Any, redis_url: str
) -> None:
    declare(kmock, peering=PEERING)
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    async with operator(kmock) as op:
        alive = await answers(lambda: op.get(op.liveness, "/healthz"))
        assert alive.status_code == 200
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 5, timeout_s=20)
        labels = (("autoscaler", "orders"), ("namespace", NS))
        depth = await op.samples("flotilla_autoscaler_queue_depth")
        assert depth[(*labels, ("state", "ready"))] == 45
        desired = await op.samples("flotilla_autoscaler_desired_replicas")
        assert desired[labels] == 5
        decisions = await op.samples("flotilla_autoscaler_decisions_total")
        assert decisions[(("action", "scale-up"), *labels)] >= 1
        assert await op.stop() == 0
    broker.close()


@pytest.mark.asyncio
async def test_two_replicas_one_acts_and_the_other_takes_over_when_it_goes(
    kmock: Any, redis_url: str
) -> None:
    """kopf peering: the higher priority acts, the lower waits; SIGTERM on the active one hands
    the work over without waiting for its lease to run out."""
    declare(kmock, peering=PEERING)
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    async with operator(kmock, "--priority", "200") as first:
        await eventually(lambda: len(peers(kmock)) == 1, timeout_s=20)
        async with operator(kmock, "--priority", "100") as second:
            # kopf starts paused and resumes only when no live peer has a higher priority
            await eventually(lambda: len(peers(kmock)) == 2, timeout_s=20)
            await answers(lambda: second.get(second.metrics, "/metrics"))
            await create(kmock, autoscaler(queue, redis_url))
            await eventually(lambda: replicas(kmock) == 5, timeout_s=20)
            assert await first.samples("flotilla_autoscaler_decisions_total")
            assert await second.samples("flotilla_autoscaler_decisions_total") == {}

            assert first.said("Resuming operations") and not second.said("Resuming operations")
            assert await first.stop() == 0
            await eventually(lambda: second.said("Resuming operations"), timeout_s=30)
            fill(redis_url, queue, 20).close()  # 65 now: only a live operator scales to 6
            await eventually(lambda: replicas(kmock) == 6, timeout_s=30)
            assert await second.samples("flotilla_autoscaler_decisions_total")
            await second.stop()
    broker.close()
