"""An emulated cluster for the operator: kmock's KubernetesEmulator holding what kopf and the
operator need (the API server cannot run here), plus helpers to seed and read it.

The emulator merges a ``…/scale`` patch into the Deployment itself, so the replicas are read
from ``spec.replicas`` there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import dramatiq
import httpx

from flotilla.core import broker_from_url

NS = "shop"
WA = "flotilla.dev/v1alpha1/workerautoscalers"
DEPLOYMENTS = "apps/v1/deployments"
PEERINGS = "kopf.dev/v1/kopfpeerings"


def declare(kmock: Any, *, peering: str | None = None) -> None:
    """The backbone kopf waits for, the CRD's resource, and a Deployment at 1 replica."""
    for resource in (
        "v1/namespaces",
        "v1/events",
        "v1/secrets",
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        DEPLOYMENTS,
        WA,
        PEERINGS,
    ):
        kmock.resources[resource] = {}
    kmock.resources[WA].kind = "WorkerAutoscaler"
    kmock.resources[WA].namespaced = True
    kmock.resources[WA].verbs = {"list", "watch", "get", "patch", "update"}
    kmock.resources[DEPLOYMENTS].kind = "Deployment"
    kmock.resources["v1/events"].kind = "Event"
    kmock.resources["v1/events"].namespaced = True
    kmock.resources["v1/events"].verbs = {"create", "list", "get"}
    kmock.resources[PEERINGS].kind = "KopfPeering"
    kmock.resources[PEERINGS].namespaced = True
    kmock.objects[DEPLOYMENTS, NS, "orders-worker"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-worker", "namespace": NS, "resourceVersion": "1"},
        "spec": {"replicas": 1},
    }
    if peering:
        kmock.objects[PEERINGS, NS, peering] = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": peering, "namespace": NS, "resourceVersion": "1"},
        }


def pods(kmock: Any, *names: str, labels: Mapping[str, str] | None = None) -> None:
    """Declare pods (get, list, patch) and seed ``names`` in the namespace."""
    kmock.resources["v1/pods"] = {}
    kmock.resources["v1/pods"].kind = "Pod"
    kmock.resources["v1/pods"].namespaced = True
    kmock.resources["v1/pods"].verbs = {"list", "get", "patch"}
    for name in names:
        kmock.objects["v1/pods", NS, name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": dict(labels or {}),
                "resourceVersion": "1",
            },
        }


def pod_labels(kmock: Any, name: str) -> dict[str, str]:
    return dict(plain(kmock.objects["v1/pods", NS, name])["metadata"].get("labels") or {})


async def create(kmock: Any, obj: dict[str, Any]) -> None:
    """``kubectl create``: POST the object to the API, so watchers hear of it.

    NOTE: assigning to ``kmock.objects`` stores an object without telling open watches; that
    only works for objects that exist before the operator lists them.
    """
    group_version = obj["apiVersion"]
    prefix = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    plural = {"WorkerAutoscaler": "workerautoscalers"}[obj["kind"]]
    path = f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}"
    async with httpx.AsyncClient(base_url=str(kmock.url).rstrip("/")) as client:
        (await client.post(path, json=obj)).raise_for_status()


def autoscaler(queue: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "WorkerAutoscaler",
        "metadata": {
            "name": "orders",
            "namespace": NS,
            "uid": "uid-orders",
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
            "fallback": {"replicas": 2},
            **spec,
        },
    }


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


def plain(value: Any) -> Any:
    """kmock's object views as plain JSON values (dicts and lists)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def wa(kmock: Any) -> dict[str, Any]:
    obj: dict[str, Any] = plain(kmock.objects[WA, NS, "orders"])
    return obj


def status(kmock: Any) -> dict[str, Any]:
    return dict(wa(kmock).get("status", {}))


def fill(redis_url: str, queue: str, count: int) -> dramatiq.Broker:
    """Enqueue ``count`` messages the way Dramatiq does (no hand-written keys)."""
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue)
    def job(i: int) -> None: ...

    for i in range(count):
        job.send(i)
    return broker


def events(kmock: Any) -> list[dict[str, Any]]:
    """The Kubernetes Events posted in the emulated cluster.

    NOTE: the emulator does not honour ``generateName``, so it keeps only the latest Event.
    """
    return [
        plain(obj)
        for key, obj in kmock.objects.items()
        if getattr(key[0], "plural", None) == "events" and obj is not None
    ]
