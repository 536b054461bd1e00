"""The operator under kopf against kmock's KubernetesEmulator, with a real Redis behind it.

The emulator stands in for the Kubernetes API (none can run here); the broker, the Dramatiq
messages and kopf are real (see tests/operator/cluster.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import kopf
import pytest
import pytest_asyncio

from flotilla.operator.kube import KubeApi, register
from tests.operator.cluster import (
    NS,
    autoscaler,
    create,
    declare,
    events,
    eventually,
    fill,
    replicas,
    status,
    wa,
)
from tests.support.crd import admission_errors, printer_column, version
from tests.support.ports import free_port


@pytest_asyncio.fixture
async def cluster(kmock: Any) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[None]]]:
    """kopf running the operator against the emulator, holding a Deployment at 1 replica."""
    declare(kmock)
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

    async def add(obj: dict[str, Any]) -> None:
        await create(kmock, obj)

    yield add
    stop.set()
    await asyncio.to_thread(runner.join, 20)  # kmock keeps serving while kopf shuts down
    assert not runner.is_alive(), "the operator did not stop within 20 s"


@pytest.mark.asyncio
async def test_a_filled_queue_scales_the_deployment_and_says_why(
    kmock: Any, cluster: Any, redis_url: str
) -> None:
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    await cluster(autoscaler(queue, redis_url))
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
    # what the operator writes is what the CRD declares, and `kubectl get wa` has every column
    assert admission_errors(wa(kmock)) == []
    columns = {c["name"]: c["jsonPath"] for c in version()["additionalPrinterColumns"]}
    shown = {name: printer_column(wa(kmock), path) for name, path in columns.items()}
    assert shown["Target"] == "orders-worker" and shown["Depth"] == 45
    assert shown["Replicas"] == 5 and shown["In-Flight"] == 0
    scaled = [e for e in events(kmock) if e.get("reason") == "ScaledUp"]
    assert scaled, "no ScaledUp event"
    assert scaled[0]["message"].startswith("1→5: depth 45 (ready 45, delayed 0, in-flight 0)")
    assert scaled[0]["involvedObject"]["name"] == "orders"

    broker.flush(queue)  # drained: scale down, but only after the 2 s window
    drained_at = time.monotonic()
    await eventually(lambda: replicas(kmock) == 1)
    assert time.monotonic() - drained_at >= 1.5
    broker.close()


@pytest.mark.asyncio
async def test_an_unreachable_broker_gives_the_fallback_and_the_condition(
    kmock: Any, cluster: Any
) -> None:
    await cluster(autoscaler("orders", f"redis://127.0.0.1:{free_port()}/0"))
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
    await cluster(autoscaler(queue, redis_url, annotations={"flotilla.dev/paused": "true"}))
    seen = await eventually(lambda: status(kmock).get("lastDecision") and status(kmock))
    assert "paused" in seen["lastDecision"]
    await asyncio.sleep(1)
    assert replicas(kmock) == 1
    broker.close()


@pytest.mark.asyncio
async def test_an_invalid_object_gets_a_status_error_not_a_crash(kmock: Any, cluster: Any) -> None:
    bad = autoscaler("orders", "redis://127.0.0.1:6379/0")
    bad["spec"].update({"minReplicas": 5, "maxReplicas": 2})
    await cluster(bad)
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
    await cluster(obj)
    await eventually(lambda: replicas(kmock) == 3)  # ceil(25 / 10)
    broker.close()


@pytest.mark.asyncio
async def test_a_new_spec_applies_at_once_not_after_the_poll_interval(
    kmock: Any, cluster: Any, redis_url: str
) -> None:
    """Given a 60 s poll interval, raising maxReplicas scales within seconds (on.update wakes
    the daemon)."""
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    obj = autoscaler(queue, redis_url, maxReplicas=2, pollIntervalSeconds=60)
    await cluster(obj)
    await eventually(lambda: replicas(kmock) == 2)
    async with httpx.AsyncClient(base_url=str(kmock.url).rstrip("/")) as client:  # kubectl patch
        answer = await client.patch(
            f"/apis/flotilla.dev/v1alpha1/namespaces/{NS}/workerautoscalers/orders",
            json={"spec": {"maxReplicas": 6}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        answer.raise_for_status()
    await eventually(lambda: replicas(kmock) == 5, timeout_s=15)  # far inside the 60 s poll
    broker.close()


@pytest.mark.asyncio
async def test_on_rabbitmq_without_management_the_status_says_what_is_not_counted(
    kmock: Any, cluster: Any, rabbitmq_url: str
) -> None:
    """Given RabbitMQ whose management API does not answer, the operator scales on the ready
    count from the AMQP passive declare and says in-flight is not counted."""
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(rabbitmq_url, queue, 25)
    obj = autoscaler(queue, rabbitmq_url)
    obj["spec"]["broker"]["managementUrl"] = f"http://127.0.0.1:{free_port()}"  # nothing there
    try:
        await cluster(obj)
        await eventually(lambda: replicas(kmock) == 3)  # ceil(25 / 10)
        seen = await eventually(lambda: status(kmock).get("conditions") and status(kmock))
        reachable = next(c for c in seen["conditions"] if c["type"] == "BrokerReachable")
        assert (reachable["status"], reachable["reason"]) == ("True", "PartialRead")
        assert "in-flight and delayed messages are not counted" in reachable["message"]
    finally:
        broker.flush_all()
        broker.close()
