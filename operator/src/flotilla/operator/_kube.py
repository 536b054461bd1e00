"""The few Kubernetes API calls the operator makes, over a pooled async HTTP client.

Least privilege: read WorkerAutoscalers and patch their status, read and patch the ``scale``
subresource of Deployments, list the target's pods and annotate them (their deletion cost),
read the Secret that holds a broker URL, label the operator's own pod with its peering role.
kopf posts the Events.

It presents the same :class:`~flotilla.operator._credentials.Credentials` as kopf's session:
the same CA and the same token, read again from its file after a 401 (a rotated token) and
the request sent once more with it.
"""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import Any

import httpx

from ._credentials import Credentials

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


class BearerToken(httpx.Auth):
    """The credentials' current token on every request; after a 401, the token read again
    and the request sent once more if it changed. Every answer is reported back."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.credentials.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = self.credentials.reread()
            if fresh and fresh != token:
                token = fresh
                request.headers["Authorization"] = f"Bearer {token}"
                response = yield request
        self.credentials.answered(response.status_code, token)


class KubeApi:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        server = credentials.server
        self.http = httpx.AsyncClient(
            base_url=server.url,
            auth=BearerToken(credentials),
            verify=server.ssl_context() or True,
            timeout=10,
        )

    async def ping(self) -> None:
        """Ask the API server something every identity may read (``GET /api``).

        Raises:
            KubeError: it did not answer (``status`` None) or rejected the token (401).
        """
        try:
            answer = await self.http.get("/api")
        except httpx.HTTPError as exc:
            raise KubeError(f"GET /api: {_reason(exc)}") from exc
        if answer.status_code == 401:
            raise KubeError("GET /api: 401 Unauthorized", 401)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KubeError(f"{method} {path}: {_reason(exc)}") from exc
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

    async def label_pod(self, namespace: str, pod: str, labels: dict[str, str]) -> None:
        await self._call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{pod}",
            json={"metadata": {"labels": labels}},
            headers=MERGE_PATCH,
        )

    async def peering(self, namespace: str, name: str) -> dict[str, Any]:
        """A ``KopfPeering`` (a ``ClusterKopfPeering`` for namespace ``""``): its status
        holds every replica's lease."""
        if not namespace:
            return await self._call("GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}")
        path = f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{name}"
        return await self._call("GET", path)

    async def close(self) -> None:
        await self.http.aclose()


def _reason(exc: httpx.HTTPError) -> str:
    """``ConnectError: [Errno 111] Connection refused``: the kind and what it says."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
