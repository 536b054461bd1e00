"""The operator's image, run as its chart pod (command, env, probes, security context), logs
in the way it does in a cluster and scales a Deployment on the queue depth of the platform's
Redis pod.

No API server can run here. The Kubernetes API is kmock's KubernetesEmulator in the test
process, behind tests/support/api_front.py: HTTPS with a certificate from a CA made for the
test, answering 401 to any token but the ones it accepts. The pod gets what a kubelet gives a
pod whose service account token is mounted (tests/support/service_account.py): the projected
``token``, ``ca.crt`` and ``namespace`` at /var/run/secrets/kubernetes.io/serviceaccount and
``KUBERNETES_SERVICE_HOST``/``_PORT`` pointing at the front. Nothing here sets
``FLOTILLA_OPERATOR_API_URL``. Redis is the chart's Redis pod; the messages are real Dramatiq
ones.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from flotilla.operator.kube import ROLE_LABEL
from tests.containers.conftest import NAMESPACE, RELEASE, pod
from tests.operator.cluster import (
    autoscaler,
    create,
    declare,
    eventually,
    fill,
    pod_labels,
    pods,
    replicas,
)
from tests.support.api_front import ApiFront, CertificateAuthority
from tests.support.kubelet import Kubelet
from tests.support.service_account import ServiceAccounts

pytestmark = pytest.mark.containers

assert NAMESPACE == "shop"  # the emulated cluster's namespace (tests/operator/cluster.py)


def _log_lines(cluster: Kubelet, operator: Any, text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in cluster.logs(operator).splitlines()
        if text in line and line.startswith("{")
    ]


@pytest.mark.asyncio
async def test_the_operator_image_logs_in_with_its_service_account_and_scales_a_deployment(
    cluster: Kubelet, kmock: Any, tmp_path: Path
) -> None:
    peering = "flotilla-operator"  # the chart's --peering
    declare(kmock, peering=peering)
    authority = CertificateAuthority(tmp_path / "pki")
    gateway = cluster.gateway  # where the pods reach the test process
    front = ApiFront(
        str(kmock.url),
        authority,
        tokens={"sa-token-1"},
        host="0.0.0.0",
        names=(gateway, "kubernetes.default.svc"),
    )
    await front.start()
    cluster.service_accounts = ServiceAccounts(gateway, front.port, authority.ca_pem, "sa-token-1")
    redis = pod(cluster, "redis")
    queue = f"containers-{uuid.uuid4().hex[:8]}"
    broker = fill(f"redis://{redis.ip}:6379/0", queue, 45)  # 45 ready at 10 each: 5 replicas
    name = f"{RELEASE}-operator"
    cluster.extra_env[name] = {"OTEL_SDK_DISABLED": "true"}
    operator = await asyncio.to_thread(cluster.start, name)
    pods(kmock, operator.name)  # the pod object it labels with its role
    try:
        await asyncio.to_thread(cluster.wait_ready, [operator], 60)
        (state,) = operator.containers.values()
        env = state.container.attrs["Config"]["Env"]
        assert not [e for e in env if e.startswith("FLOTILLA_OPERATOR_API")]
        # the broker URL as the pods know it: the Redis Service's name
        await create(kmock, autoscaler(queue, f"redis://{RELEASE}-redis:6379/0"))
        try:
            await eventually(lambda: replicas(kmock) == 5, timeout_s=40)
        except AssertionError:
            raise AssertionError(cluster.describe([operator.name])) from None
        assert front.served["sa-token-1"] > 0 and front.refused == []
        await eventually(lambda: pod_labels(kmock, operator.name).get(ROLE_LABEL) == "active")

        # the kubelet rotates the projected token and the old one stops working at once
        front.tokens = {"sa-token-2"}
        cluster.service_accounts.rotate("sa-token-2")
        fill(f"redis://{redis.ip}:6379/0", queue, 10).close()  # 55: a working operator asks 6
        await eventually(lambda: replicas(kmock) == 6, timeout_s=40)
        assert front.served["sa-token-2"] > 0 and operator.ready
        assert not _log_lines(cluster, operator, "rejects the token")

        # a token the API server refuses: said once, readiness fails, no restart, no storm
        front.tokens = {"sa-token-4"}
        cluster.service_accounts.rotate("sa-token-3")
        refused_from = time.monotonic()
        fill(f"redis://{redis.ip}:6379/0", queue, 1).close()  # a round has something to do
        await eventually(lambda: not operator.ready, timeout_s=40)
        assert 0 < front.refused_since(refused_from) <= 30
        said = _log_lines(cluster, operator, "rejects the token")
        assert len(said) == 1 and said[0]["level"] == "error", said
        assert state.restarts == 0

        front.tokens = {"sa-token-4"}
        cluster.service_accounts.rotate("sa-token-4")
        await eventually(lambda: operator.ready, timeout_s=60)
        assert front.served["sa-token-4"] > 0 and state.restarts == 0

        codes = await asyncio.to_thread(cluster.delete, operator)
        assert codes == {"operator": 0}
    finally:
        broker.close()
        await front.stop()
