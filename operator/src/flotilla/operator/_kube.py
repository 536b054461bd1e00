"""The few Kubernetes API calls the operator makes, over a pooled async HTTP client.

Least privilege: read WorkerAutoscalers and patch their status, read and patch the ``scale``
subresource of Deployments, list the target's pods and annotate them (their deletion cost),
read the Secret that holds a broker URL. kopf posts the Events.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import httpx

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
#: Kubernetes removes the pods with the lowest cost first when a ReplicaSet scales in.
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


class KubeError(RuntimeError):
    """The API server refused or could not be reached (``status``: its HTTP status, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def gone(self) -> bool:
        """The object asked about does not exist (any more)."""
        return self.status == 404


class KubeApi:
    def __init__(
        self, base_url: str, *, token: str | None = None, verify: str | bool = True
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, verify=verify, timeout=10
        )

    @classmethod
    def from_environment(cls) -> KubeApi:
        """In a pod: the service account; elsewhere ``FLOTILLA_OPERATOR_API_URL``."""
        url = os.environ.get("FLOTILLA_OPERATOR_API_URL")
        if url:
            return cls(url, token=os.environ.get("FLOTILLA_OPERATOR_API_TOKEN"))
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        return cls(f"https://{host}:{port}", token=token, verify=str(SERVICE_ACCOUNT / "ca.crt"))

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KubeError(f"{method} {path}: {type(exc).__name__}") from exc
        if answer.status_code >= 400:
            raise KubeError(
                f"{method} {path}: {answer.status_code} {answer.text[:200]}", answer.status_code
            )
        body: dict[str, Any] = answer.json()
        return body

    async def deployment_replicas(self, namespace: str, name: str) -> int:
        body = await self._call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        return int(body.get("spec", {}).get("replicas", 1))

    async def pods_of(self, namespace: str, deployment: str) -> dict[str, dict[str, Any]]:
        """The running pods of a Deployment (by its selector): name → the pod's metadata."""
        body = await self._call(
            "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
        )
        wanted = dict(body.get("spec", {}).get("selector", {}).get("matchLabels", {}))
        selector = ",".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        listed = await self._call(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
        )
        pods = {}
        for pod in listed.get("items", []):
            meta = pod.get("metadata", {})
            labels = meta.get("labels") or {}
            # NOTE: filtered here too, in case a server ignores labelSelector
            if all(labels.get(k) == v for k, v in wanted.items()) and not meta.get(
                "deletionTimestamp"
            ):
                pods[str(meta["name"])] = meta
        return pods

    async def set_deletion_cost(self, namespace: str, pod: str, cost: int) -> None:
        await self._call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{pod}",
            json={"metadata": {"annotations": {DELETION_COST: str(cost)}}},
            headers=MERGE_PATCH,
        )

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            json={"spec": {"replicas": replicas}},
            headers=MERGE_PATCH,
        )

    async def autoscaler(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/flotilla.dev/v1alpha1/namespaces/{namespace}/workerautoscalers/{name}"
        return await self._call("GET", path)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = f"/apis/flotilla.dev/v1alpha1/namespaces/{namespace}/workerautoscalers/{name}"
        await self._call("PATCH", f"{path}/status", json={"status": status}, headers=MERGE_PATCH)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        body = await self._call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        try:
            return base64.b64decode(body["data"][key]).decode()
        except (KeyError, ValueError) as exc:
            raise KubeError(f"secret {name} has no key {key}") from exc

    async def close(self) -> None:
        await self.http.aclose()
