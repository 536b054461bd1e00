"""The operator's image, run as its chart pod (command, env, security context), scales a
Deployment on the queue depth of the platform's Redis pod.

No API server can run here: the Kubernetes API is kmock's KubernetesEmulator in the test
process, listening on the pods' network's gateway; the pod gets its address in
``FLOTILLA_OPERATOR_API_URL`` (a kubeconfig or service account would point there in a cluster),
which the harness reports. Redis is the chart's Redis pod; the messages are real Dramatiq ones.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.containers.conftest import RELEASE, pod
from tests.operator.cluster import autoscaler, create, declare, eventually, fill, replicas
from tests.support.kubelet import Kubelet


@pytest.mark.asyncio
@pytest.mark.kmock(host="0.0.0.0")  # the operator's pod reaches it over the bridge
async def test_the_operator_image_scales_a_deployment_in_the_emulated_cluster(
    cluster: Kubelet, kmock: Any
) -> None:
    peering = "flotilla-operator"  # the chart's --peering
    declare(kmock, peering=peering)
    redis = pod(cluster, "redis")
    queue = f"containers-{uuid.uuid4().hex[:8]}"
    broker = fill(f"redis://{redis.ip}:6379/0", queue, 45)  # 45 ready at 10 each: 5 replicas
    name = f"{RELEASE}-operator"
    api = f"http://{cluster.gateway}:{urlsplit(str(kmock.url)).port}"
    cluster.extra_env[name] = {"FLOTILLA_OPERATOR_API_URL": api, "OTEL_SDK_DISABLED": "true"}
    operator = await asyncio.to_thread(cluster.start, name)
    try:
        await asyncio.to_thread(cluster.wait_ready, [operator], 60)
        # the broker URL as the pods know it: the Redis Service's name
        await create(kmock, autoscaler(queue, f"redis://{RELEASE}-redis:6379/0"))
        try:
            await eventually(lambda: replicas(kmock) == 5, timeout_s=40)
        except AssertionError:
            raise AssertionError(cluster.describe([operator.name])) from None
        codes = await asyncio.to_thread(cluster.delete, operator)
        assert codes == {"operator": 0}
    finally:
        broker.close()
