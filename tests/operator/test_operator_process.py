"""``python -m flotilla.operator`` as a real process: liveness, Prometheus metrics, SIGTERM, and
two replicas sharing the work through kopf peering.

The Kubernetes API is kmock's KubernetesEmulator (no API server can run here), reached over
real HTTP through ``FLOTILLA_OPERATOR_API_URL``; Redis and the Dramatiq messages are real.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flotilla.operator.kube import ROLE_LABEL
from tests.operator.cluster import (
    NS,
    PEERINGS,
    autoscaler,
    create,
    declare,
    eventually,
    fill,
    plain,
    pod_labels,
    pods,
    replicas,
)
from tests.operator.processes import answers, operator, operator_process

pytestmark = pytest.mark.integration

PEERING = "flotilla-operator"


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
        alive = await answers(lambda: op.get(op.probes, "/healthz"))
        assert alive.status_code == 200
        for _ in range(5):  # the kubelet's probes, every few seconds: none of them is logged
            assert (await op.get(op.probes, "/healthz")).status_code == 200
            assert (await op.get(op.probes, "/readyz")).status_code == 200
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 5, timeout_s=20)
        labels = (("autoscaler", "orders"), ("namespace", NS))
        depth = await op.samples("flotilla_autoscaler_queue_depth")
        assert depth[(*labels, ("state", "ready"))] == 45
        desired = await op.samples("flotilla_autoscaler_desired_replicas")
        assert desired[labels] == 5
        decisions = await op.samples("flotilla_autoscaler_decisions_total")
        assert decisions[(("action", "scale-up"), *labels)] >= 1
        assert not op.said("/healthz") and not op.said("/readyz")
        assert await op.stop() == 0
    broker.close()


@pytest.mark.asyncio
async def test_two_replicas_one_acts_and_the_other_takes_over_when_it_goes(
    kmock: Any, redis_url: str
) -> None:
    """kopf peering: the higher priority acts, the lower waits; SIGTERM on the active one hands
    the work over without waiting for its lease to run out. Each replica says which it is: on
    /metrics (flotilla_operator_active), on /readyz and as its pod's label, which the chart's
    metrics Service selects."""
    declare(kmock, peering=PEERING)
    pods(kmock, "operator-a", "operator-b")
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    api = {"FLOTILLA_OPERATOR_API_URL": str(kmock.url).rstrip("/")}
    api["FLOTILLA_OPERATOR_POD_NAMESPACE"] = NS
    first_env, second_env = (
        {**api, "FLOTILLA_OPERATOR_POD_NAME": name} for name in ("operator-a", "operator-b")
    )
    async with operator_process(first_env, "--priority", "200") as first:
        await eventually(lambda: len(peers(kmock)) == 1, timeout_s=20)
        async with operator_process(second_env, "--priority", "100") as second:
            # kopf starts paused and resumes only when no live peer has a higher priority
            await eventually(lambda: len(peers(kmock)) == 2, timeout_s=20)
            await answers(lambda: second.get(second.metrics, "/metrics"))
            await create(kmock, autoscaler(queue, redis_url))
            await eventually(lambda: replicas(kmock) == 5, timeout_s=20)
            assert await first.samples("flotilla_autoscaler_decisions_total")
            assert await second.samples("flotilla_autoscaler_decisions_total") == {}
            await eventually(lambda: pod_labels(kmock, "operator-b").get(ROLE_LABEL) == "standby")
            assert pod_labels(kmock, "operator-a")[ROLE_LABEL] == "active"
            assert await first.samples("flotilla_operator_active") == {(): 1.0}
            assert await second.samples("flotilla_operator_active") == {(): 0.0}
            readiness = (await second.get(second.probes, "/readyz")).json()
            assert readiness["role"] == "standby" and readiness["ready"] is True

            assert first.said("Resuming operations") and not second.said("Resuming operations")
            assert await first.stop() == 0
            await eventually(lambda: second.said("Resuming operations"), timeout_s=30)
            fill(redis_url, queue, 20).close()  # 65 now: only a live operator scales to 6
            await eventually(lambda: replicas(kmock) == 6, timeout_s=30)
            assert await second.samples("flotilla_autoscaler_decisions_total")
            await eventually(lambda: pod_labels(kmock, "operator-b")[ROLE_LABEL] == "active")
            assert await second.samples("flotilla_operator_active") == {(): 1.0}
            await second.stop()
    broker.close()
