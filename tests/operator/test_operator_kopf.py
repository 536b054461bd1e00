"""The operator under kopf against kmock's KubernetesEmulator, with a real Redis behind it.

The emulator stands in for the Kubernetes API (none can run here); the broker, the Dramatiq
messages and kopf are real (see tests/operator/cluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import dramatiq
import httpx
import kopf
import pytest
import pytest_asyncio

from flotilla.operator.kube import ApiServer, Credentials, KubeApi, register
from tests.operator.cluster import (
    DEPLOYMENTS,
    NS,
    WA,
    autoscaler,
    create,
    declare,
    events,
    eventually,
    fill,
    plain,
    pods,
    replicas,
    status,
    wa,
)
from tests.support.crd import admission_errors, printer_column, version
from tests.support.ports import free_port
from tests.support.redis_server import throwaway_redis

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running_operator(kmock: Any) -> AsyncIterator[None]:
    """kopf running the operator against the emulator until the block ends."""
    registry = kopf.OperatorRegistry()
    url = str(kmock.url).rstrip("/")

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    register(registry, lambda: KubeApi(Credentials(ApiServer(url, source="kmock"))))
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
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(runner.join, 20)  # kmock keeps serving while kopf shuts down
    assert not runner.is_alive(), "the operator did not stop within 20 s"


@pytest_asyncio.fixture
async def cluster(kmock: Any) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[None]]]:
    """kopf running the operator against the emulator, holding a Deployment at 1 replica."""
    declare(kmock)

    async def add(obj: dict[str, Any]) -> None:
        await create(kmock, obj)

    async with running_operator(kmock):
        yield add


def exists(kmock: Any, name: str) -> bool:
    """Whether the WorkerAutoscaler is there (the emulator keeps a deleted one's history)."""
    try:
        return not kmock.objects[WA, NS, name].deleted
    except KeyError:
        return False


def status_of(kmock: Any, name: str) -> dict[str, Any]:
    return dict(plain(kmock.objects[WA, NS, name]).get("status", {})) if exists(kmock, name) else {}


def status_patches(kmock: Any, name: str) -> int:
    """How many times the operator patched the status of WorkerAutoscaler ``name``."""
    path = f"/workerautoscalers/{name}/status"
    return sum(
        1
        for r in list(kmock)
        if str(r.method).upper().endswith("PATCH") and r.url.path.endswith(path)
    )


async def delete(kmock: Any, name: str) -> None:
    """``kubectl delete wa <name>``."""
    async with httpx.AsyncClient(base_url=str(kmock.url).rstrip("/")) as client:
        answer = await client.delete(
            f"/apis/flotilla.dev/v1alpha1/namespaces/{NS}/workerautoscalers/{name}"
        )
        answer.raise_for_status()


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
    # the event is posted after the scale patch, so it may trail the replicas by a moment
    scaled = await eventually(
        lambda: [e for e in events(kmock) if e.get("reason") == "ScaledUp"], timeout_s=10
    )
    assert scaled[0]["message"].startswith("1→5: depth 45 (ready 45, delayed 0, in-flight 0)")
    assert scaled[0]["involvedObject"]["name"] == "orders"

    broker.flush(queue)  # drained: scale down, but only after the 2 s window
    drained_at = time.monotonic()
    await eventually(lambda: replicas(kmock) == 1)
    # NOTE: without the window the next 0.3 s poll would scale down; the last round that saw
    # the depth may have started a little before the flush, hence not the full 2 s
    assert time.monotonic() - drained_at >= 1.0
    broker.close()


@pytest.mark.asyncio
async def test_an_unreachable_broker_gives_the_fallback_and_the_condition(
    kmock: Any, cluster: Any
) -> None:
    """Three failed reads in a row (0.3 s apart), then the fallback: 1 → 2 replicas."""
    await cluster(autoscaler("orders", f"redis://127.0.0.1:{free_port()}/0"))
    await eventually(lambda: replicas(kmock) == 2)
    seen = await eventually(
        lambda: (
            any(
                c["type"] == "Fallback" and c["status"] == "True"
                for c in status(kmock).get("conditions", [])
            )
            and status(kmock)
        )
    )
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


@pytest.fixture
def outage_redis() -> Any:
    """A Redis of the test's own, so it can be stopped: a broker outage."""
    with throwaway_redis() as server:
        yield server


@pytest.mark.asyncio
@pytest.mark.parametrize("behavior", ["currentReplicasIfHigher", "static"])
async def test_one_failed_read_changes_nothing_and_the_fallback_keeps_busy_workers(
    kmock: Any, cluster: Any, outage_redis: Any, behavior: str
) -> None:
    """4 replicas at work, then the broker goes away: the first failed reads change nothing;
    after the threshold, the default fallback keeps the 4 (never below the current count),
    a static one goes to its 2."""
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(outage_redis.url, queue, 40)
    obj = autoscaler(
        queue,
        outage_redis.url,
        pollIntervalSeconds=0.5,
        fallback={"replicas": 2, "failureThreshold": 3, "behavior": behavior},
    )
    await cluster(obj)
    await eventually(lambda: replicas(kmock) == 4)
    broker.close()
    outage_redis.stop()
    first = await eventually(
        lambda: "1 of 3 failures" in status(kmock).get("lastDecision", "") and status(kmock)
    )
    assert replicas(kmock) == 4
    assert {c["type"]: c["status"] for c in first["conditions"]}["Fallback"] == "False"
    fell = await eventually(
        lambda: (
            any(
                c["type"] == "Fallback" and c["status"] == "True"
                for c in status(kmock)["conditions"]
            )
            and status(kmock)
        )
    )
    await asyncio.sleep(1.2)  # a few more rounds in fallback
    assert replicas(kmock) == (4 if behavior == "currentReplicasIfHigher" else 2)
    assert "redis" in fell["lastDecision"]


@pytest.mark.asyncio
async def test_an_unexpected_error_is_a_condition_and_a_retry_not_a_dead_daemon(
    kmock: Any, cluster: Any, redis_url: str
) -> None:
    """The target Deployment does not exist yet: the object says so (Ready=False, Error),
    the daemon keeps trying, and scales the Deployment once it appears."""
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 25)
    obj = autoscaler(queue, redis_url)
    obj["spec"]["scaleTargetRef"] = {"name": "late-worker"}
    await cluster(obj)
    seen = await eventually(
        lambda: (
            any(c.get("reason") == "Error" for c in status(kmock).get("conditions", []))
            and status(kmock)
        )
    )
    (ready,) = [c for c in seen["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "False" and "late-worker" in ready["message"]
    assert admission_errors(wa(kmock)) == []
    kmock.objects[DEPLOYMENTS, NS, "late-worker"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "late-worker", "namespace": NS, "resourceVersion": "1"},
        "spec": {"replicas": 1},
    }
    await eventually(
        lambda: kmock.objects[DEPLOYMENTS, NS, "late-worker"]["spec"]["replicas"] == 3,
        timeout_s=30,
    )
    broker.close()


@pytest.mark.asyncio
async def test_objects_carry_no_finalizer_and_are_deletable_once_the_operator_is_gone(
    kmock: Any, redis_url: str
) -> None:
    """`helm uninstall` removes the operator first, then the WorkerAutoscalers (and the CRD
    with `kubectl delete crd`): nothing may wait for an operator that is gone. A deletion
    while the operator runs stops its daemon."""
    declare(kmock)
    kmock.resources[WA].verbs = {"list", "watch", "get", "patch", "update", "delete"}
    queue = f"op-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 25)
    async with running_operator(kmock):
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 3)
        assert not wa(kmock)["metadata"].get("finalizers")
        second = autoscaler(queue, redis_url)
        second["metadata"] = {**second["metadata"], "name": "second", "uid": "uid-second"}
        await create(kmock, second)
        await eventually(lambda: status_of(kmock, "second"))
        await delete(kmock, "second")  # while the operator runs
        await eventually(lambda: not exists(kmock, "second"))
        await asyncio.sleep(1)  # its daemon notices (a 404) and stops
        before = status_patches(kmock, "second")
        assert before > 0
        await asyncio.sleep(1.5)  # five poll intervals
        assert status_patches(kmock, "second") == before, "a daemon still works for it"
    await delete(kmock, "orders")  # the operator is gone
    await eventually(lambda: not exists(kmock, "orders"), timeout_s=5)
    broker.close()


@pytest.mark.asyncio
async def test_before_a_scale_in_busy_pods_get_a_deletion_cost_and_idle_ones_go_first(
    kmock: Any, cluster: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three pods, one of them (p-c) in the middle of a job: before scaling 3 → 1 the
    operator sets controller.kubernetes.io/pod-deletion-cost from the messages each pod
    holds (read from the broker), so the ReplicaSet removes p-a and p-b, not p-c."""
    from dramatiq import Worker

    from flotilla.core import broker_from_url

    labels = {"app.kubernetes.io/name": "orders-worker"}
    kmock.objects[DEPLOYMENTS, NS, "orders-worker"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-worker", "namespace": NS, "resourceVersion": "1"},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}},
    }
    pods(kmock, "p-a", "p-b", "p-c", labels=labels)
    queue = f"op-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FLOTILLA_WORKER_NAME", "p-c")
    busy = broker_from_url(redis_url)
    started, release = threading.Event(), threading.Event()

    @dramatiq.actor(broker=busy, queue_name=queue, actor_name="long_job")
    def long_job() -> None:
        started.set()
        release.wait(30)

    long_job.send()
    worker = Worker(busy, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert await asyncio.to_thread(started.wait, 15)
        await cluster(autoscaler(queue, redis_url, minReplicas=1))
        await eventually(lambda: replicas(kmock) == 1, timeout_s=20)
        costs = {
            pod: plain(kmock.objects["v1/pods", NS, pod])["metadata"]["annotations"][
                "controller.kubernetes.io/pod-deletion-cost"
            ]
            for pod in ("p-a", "p-b", "p-c")
        }
        assert costs == {"p-a": "0", "p-b": "0", "p-c": "1"}
        order = [
            r.url.path
            for r in list(kmock)
            if str(r.method).upper().endswith("PATCH")
            and ("/pods/" in r.url.path or r.url.path.endswith("/scale"))
        ]
        assert order.index(f"/api/v1/namespaces/{NS}/pods/p-c") < next(
            i for i, path in enumerate(order) if path.endswith("/scale")
        )
        scaled = await eventually(
            lambda: [e for e in events(kmock) if e.get("reason") == "ScaledDown"], timeout_s=10
        )
        assert "idle pods go first (p-a=0, p-b=0, p-c=1)" in scaled[0]["message"]
    finally:
        release.set()
        worker.stop()
        busy.close()
