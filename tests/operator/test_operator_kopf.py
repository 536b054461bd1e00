"""The operator under kopf against kmock's KubernetesEmulator, with a real Redis behind it.

The emulator stands in for the Kubernetes API (none can run here); the broker, the Dramatiq
messages and kopf are real. The emulator merges a ``…/scale`` patch into the Deployment
itself, so the replicas are read from ``spec.replicas`` there.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import dramatiq
import kopf
import pytest
import pytest_asyncio

from flotilla.core import broker_from_url
from flotilla.operator import KubeApi, register
from tests.support.ports import free_port

NS = "shop"
WA = "flotilla.dev/v1alpha1/workerautoscalers"
DEPLOYMENTS = "apps/v1/deployments"


def autoscaler(queue: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "WorkerAutoscaler",
        "metadata": {
            "name": "orders",
            "namespace": NS,
            "resourceVersion": "1",
            "annotations": spec.pop("annotations", {}),
        },
        "spec": {
            "scaleTargetRef": {"name": "orders-worker"},
            "queues": [queue],
            "broker": {"url": url},
            "minReplicas": 1,
            "maxReplicas": 6,
            "targetPerReplica": 10,
            "pollIntervalSeconds": 0.3,
            "scaleDown": {"stabilizationWindowSeconds": 2},
            "fallbackReplicas": 2,
            **spec,
        },
    }


@pytest_asyncio.fixture
async def cluster(kmock: Any) -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    """kopf running the operator against the emulator, holding a Deployment at 1 replica."""
    for resource in (
        "v1/namespaces",
        "v1/events",
        "v1/secrets",
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        DEPLOYMENTS,
        WA,
    ):
        kmock.resources[resource] = {}
    kmock.resources[WA].kind = "WorkerAutoscaler"
    kmock.resources[WA].namespaced = True
    kmock.resources[WA].verbs = {"list", "watch", "get", "patch", "update"}
    kmock.resources[DEPLOYMENTS].kind = "Deployment"
    kmock.objects[DEPLOYMENTS, NS, "orders-worker"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-worker", "namespace": NS, "resourceVersion": "1"},
        "spec": {"replicas": 1},
    }
    registry = kopf.OperatorRegistry()
    url = str(kmock.url).rstrip("/")

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    register(registry, lambda: KubeApi(url))
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    stop = threading.Event()
    # NOTE: kopf cancels every task of its loop that it did not find there when it stops, so it
    # gets a loop of its own in a thread (as kopf.testing.KopfRunner does), away from kmock's.
    runner = threading.Thread(
        target=lambda: asyncio.run(
            kopf.operator(
                registry=registry,
                settings=settings,
                namespaces=[NS],
                standalone=True,
                stop_flag=stop,
            )
        ),
        daemon=True,
    )
    runner.start()

    def add(obj: dict[str, Any]) -> None:
        kmock.objects[WA, NS, obj["metadata"]["name"]] = obj

    yield add
    stop.set()
    await asyncio.to_thread(runner.join, 20)  # kmock keeps serving while kopf shuts down
    assert not runner.is_alive(), "the operator did not stop within 20 s"


async def eventually(check: Callable[[], Any], timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def replicas(kmock: Any) -> int:
    return int(kmock.objects[DEPLOYMENTS, NS, "orders-worker"]["spec"]["replicas"])


def status(kmock: Any) -> dict[str, Any]:
    return dict(kmock.objects[WA, NS, "orders"].get("status", {}))


def fill(redis_url: str, queue: str, count: int) -> dramatiq.Broker:
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue)
    def job(i: int) -> None: ...

    for i in range(count):
        job.send(i)
    return broker


@pytest.mark.asyncio
async def test_a_filled_queue_scales_the_deployment_and_says_why(
    kmock: Any, cluster: Any, redis_url: str
) -> None:
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    cluster(autoscaler(queue, redis_url))
    await eventually(lambda: replicas(kmock) == 5)  # 1 + step 4 toward ceil(45 / 10)
    seen = await eventually(lambda: status(kmock).get("depth") == 45 and status(kmock))
    assert seen["desiredReplicas"] >= 5
    assert "depth 45" in seen["lastDecision"]
    conditions = {c["type"]: c["status"] for c in seen["conditions"]}
    assert conditions == {
        "Ready": "True",
        "BrokerReachable": "True",
        "Paused": "False",
        "Fallback": "False",
    }

    broker.flush(queue)  # drained: scale down, but only after the 2 s window
    drained_at = time.monotonic()
    await eventually(lambda: replicas(kmock) == 1)
    assert time.monotonic() - drained_at >= 1.5
    broker.close()


@pytest.mark.asyncio
async def test_an_unreachable_broker_gives_the_fallback_and_the_condition(
    kmock: Any, cluster: Any
) -> None:
    cluster(autoscaler("orders", f"redis://127.0.0.1:{free_port()}/0"))
    await eventually(lambda: replicas(kmock) == 2)
    seen = await eventually(lambda: status(kmock).get("conditions") and status(kmock))
    conditions = {c["type"]: c for c in seen["conditions"]}
    assert conditions["Fallback"]["status"] == "True"
    assert conditions["BrokerReachable"]["status"] == "False"
    assert "redis" in conditions["BrokerReachable"]["message"]


@pytest.mark.asyncio
async def test_a_paused_target_is_left_alone(kmock: Any, cluster: Any, redis_url: str) -> None:
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 100)
    cluster(autoscaler(queue, redis_url, annotations={"flotilla.dev/paused": "true"}))
    seen = await eventually(lambda: status(kmock).get("lastDecision") and status(kmock))
    assert "paused" in seen["lastDecision"]
    await asyncio.sleep(1)
    assert replicas(kmock) == 1
    broker.close()


@pytest.mark.asyncio
async def test_an_invalid_object_gets_a_status_error_not_a_crash(kmock: Any, cluster: Any) -> None:
    bad = autoscaler("orders", "redis://127.0.0.1:6379/0")
    bad["spec"].update({"minReplicas": 5, "maxReplicas": 2})
    cluster(bad)
    seen = await eventually(lambda: status(kmock).get("conditions") and status(kmock))
    (ready,) = seen["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "min_replicas <= max_replicas" in ready["message"]
    assert replicas(kmock) == 1


@pytest.mark.asyncio
async def test_the_broker_url_can_come_from_a_secret(
    kmock: Any, cluster: Any, redis_url: str
) -> None:
    import base64

    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 25)
    kmock.objects["v1/secrets", NS, "flotilla-broker"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "flotilla-broker", "namespace": NS, "resourceVersion": "1"},
        "data": {"url": base64.b64encode(redis_url.encode()).decode()},
    }
    obj = autoscaler(queue, redis_url)
    obj["spec"]["broker"] = {"urlFrom": {"secretKeyRef": {"name": "flotilla-broker", "key": "url"}}}
    cluster(obj)
    await eventually(lambda: replicas(kmock) == 3)  # ceil(25 / 10)
    broker.close()
