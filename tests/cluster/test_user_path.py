"""The user's path on a real cluster, in order: install, test, an order and its trace, the
operator (its login, scaling up and down, pause, a leader killed), pods killed and restarted
under load with every order fulfilled and charged once, an upgrade, an uninstall.

Counts are what the platform itself reports: the edge's answers, the orders' states, the
payment provider's charges, the Deployments' replicas, the pods' labels and restarts,
PostgreSQL's log. Waits end at the bounds the design gives (the operator's lease, the
autoscaler's window), never at a speed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import CHART, JOURNAL, Release
from tests.cluster.kube import (
    CommandFailed,
    PortForward,
    eventually,
    kubectl,
    kubectl_json,
    pods,
    ready,
    replicas,
    restarts,
    run,
)

pytestmark = pytest.mark.cluster

TRACED = {
    "edge",
    "orders-api",
    "inventory-api",
    "payments-api",
    "orders-worker",
    "notifications-worker",
}
ROLE = "flotilla.dev/operator-role"
#: the chart's operator lease (--peering-lifetime) and the autoscaler's poll and window
LEASE_S, POLL_S, WINDOW_S = 20, 2, 60


class ReplicaWatch:
    """A Deployment's replicas every half second, in a thread, while a block runs."""

    def __init__(self, namespace: str, deployment: str) -> None:
        self.namespace, self.deployment = namespace, deployment
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.seen.append((time.monotonic(), replicas(self.namespace, self.deployment)))
            except CommandFailed:
                continue

    def __enter__(self) -> ReplicaWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def most(self) -> int:
        return max((count for _, count in self.seen), default=0)

    def first_above(self, count: int) -> float | None:
        return next((at for at, seen in self.seen if seen > count), None)


@dataclass
class Platform:
    release: Release
    edge: PortForward
    console: PortForward
    payments: PortForward
    key: str

    @property
    def ns(self) -> str:
        return self.release.namespace

    def full(self, component: str) -> str:
        return self.release.full(component)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.edge.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def order(self) -> dict[str, Any]:
        return {
            "customer_email": "e2e@example.com",
            "items": [{"sku": "FLT-DRYBAG", "quantity": 1}],
        }

    def place(self, count: int, concurrency: int = 16) -> list[str]:
        """``count`` orders through the edge, ``concurrency`` at a time; their ids (every
        answer must be 202: a 503 is retried with its Idempotency-Key, as a client does)."""

        async def burst() -> list[str]:
            ids: list[str] = []
            queue = list(range(count))
            headers = {"Authorization": f"Bearer {self.key}"}
            async with httpx.AsyncClient(
                base_url=self.edge.url, headers=headers, timeout=60
            ) as http:

                async def one_by_one() -> None:
                    while queue:
                        queue.pop()
                        key = {"Idempotency-Key": uuid.uuid4().hex}
                        for attempt in range(10):
                            try:
                                answer = await http.post(
                                    "/api/orders", json=self.order(), headers=key
                                )
                            except httpx.TransportError:
                                answer = None
                            if answer is not None and answer.status_code == 202:
                                ids.append(answer.json()["id"])
                                break
                            assert answer is None or answer.status_code == 503, answer.text
                            await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
                        else:
                            raise AssertionError("an order was refused ten times")

                await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
            return ids

        try:
            return asyncio.run(burst())
        except httpx.TransportError:
            self.edge.restart()
            raise

    def fulfilled(self, ids: list[str]) -> set[str]:
        done: set[str] = set()
        cursor = None
        with self.client() as http:
            while True:
                params: dict[str, Any] = {"status": "fulfilled", "limit": 200}
                if cursor:
                    params["cursor"] = cursor
                page = http.get("/api/orders", params=params).json()
                done |= {o["id"] for o in page["items"]}
                cursor = page.get("next_cursor")
                if not cursor or set(ids) <= done:
                    return done & set(ids)

    def wait_fulfilled(self, ids: list[str], timeout_s: float = 300) -> float:
        started = time.monotonic()
        eventually(
            lambda: len(self.fulfilled(ids)) == len(ids),
            timeout_s,
            every_s=2,
            what=f"all {len(ids)} orders fulfilled",
        )
        return time.monotonic() - started

    def charges(self) -> Counter[str]:
        items = httpx.get(f"{self.payments.url}/charges", params={"limit": 1000}, timeout=30).json()
        return Counter(c["order_id"] for c in items["items"])

    def workers(self) -> list[dict[str, Any]]:
        return pods(
            self.ns,
            f"app.kubernetes.io/name=orders-worker,app.kubernetes.io/instance={self.release.name}",
        )

    def operators(self) -> list[dict[str, Any]]:
        return pods(
            self.ns,
            f"app.kubernetes.io/name=operator,app.kubernetes.io/instance={self.release.name}",
        )


@pytest.fixture(scope="module")
def platform(release: Release) -> Iterator[Platform]:
    forwards = [
        release.forward(c, p)
        for c, p in (("edge", 8080), ("console", 8090), ("payments-api", 8003))
    ]
    try:
        yield Platform(release, *forwards, key=release.secret("auth", "api-key"))
    finally:
        for forward in forwards:
            forward.stop()


def note(text: str) -> None:
    JOURNAL.note(text)


# --- install and test ---------------------------------------------------------------------------


def test_helm_install_waits_until_every_pod_is_ready_with_no_restart(platform: Platform) -> None:
    everything = pods(platform.ns, f"app.kubernetes.io/instance={platform.release.name}")
    note(f"helm install --wait: {platform.release.installed_in_s:.0f} s, {len(everything)} pods")
    assert everything and all(ready(p) for p in everything), [
        p["metadata"]["name"] for p in everything if not ready(p)
    ]
    restarted = {p["metadata"]["name"]: r for p in everything if any((r := restarts(p)).values())}
    note(f"container restarts: {sum(sum(r.values()) for r in restarted.values())}")
    assert restarted == {}  # the migrations waited for PostgreSQL instead of crash-looping
    budget = kubectl_json("-n", platform.ns, "get", "configmap", platform.full("connection-budget"))
    note(f"connection budget: {budget['data']['summary']}")


def test_helm_test_passes(platform: Platform) -> None:
    """As a user runs it (the test pod is removed once it passes, so there are no logs to
    fetch: ``--logs`` would fail on a passing test)."""
    out = run(
        [
            platform.release.helm,
            "test",
            platform.release.name,
            "-n",
            platform.ns,
            "--timeout",
            "5m",
        ],
        timeout_s=330,
    )
    assert "Phase: Succeeded" in " ".join(out.split()), out
    note(f"helm test: {platform.full('test')} Succeeded")


def test_an_order_through_the_edge_is_fulfilled_and_traced_across_six_services(
    platform: Platform,
) -> None:
    with platform.client() as http:
        answer = http.post("/api/orders", json=platform.order())
        assert answer.status_code == 202, answer.text
        order_id, trace_id = answer.json()["id"], answer.headers["x-trace-id"]
    took = platform.wait_fulfilled([order_id], timeout_s=60)

    def whole() -> dict[str, Any] | None:
        trace = httpx.get(f"{platform.console.url}/api/traces/{trace_id}", timeout=10)
        if trace.status_code != 200:
            return None
        spans = trace.json()["spans"]
        ids = {s["span_id"] for s in spans}
        linked = all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"])
        return trace.json() if {s["service"] for s in spans} >= TRACED and linked else None

    trace = eventually(whole, 60, what=f"trace {trace_id} with {sorted(TRACED)}")
    roots = [s for s in trace["spans"] if s["parent_span_id"] is None]
    assert [r["service"] for r in roots] == ["edge"]
    services = sorted({s["service"] for s in trace["spans"]})
    note(
        f"order fulfilled in {took:.1f} s; trace {trace_id}: "
        f"{len(trace['spans'])} spans, {len(services)} services"
    )


# --- the operator ---------------------------------------------------------------------------------


def test_the_operator_logs_in_with_its_service_account_and_one_replica_acts(
    platform: Platform,
) -> None:
    operators = platform.operators()
    roles = sorted(p["metadata"]["labels"].get(ROLE, "") for p in operators)
    assert roles == ["active", "standby"], roles
    for pod in operators:
        assert ready(pod)  # /readyz: the API server accepts its token
        log = kubectl("-n", platform.ns, "logs", pod["metadata"]["name"])
        assert "(service account /var/run/secrets/kubernetes.io/serviceaccount)" in log
        assert "rejects the token" not in log and "Invalid type" not in log
        assert '"settings"' not in log
    endpoints = kubectl_json(
        "-n", platform.ns, "get", "endpoints", platform.full("operator-metrics")
    )
    addresses = [a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])]
    active = next(p for p in operators if p["metadata"]["labels"][ROLE] == "active")
    assert addresses == [active["status"]["podIP"]]  # the metrics Service reaches the acting one
    note(f"active {active['metadata']['name']}; metrics Service -> {addresses[0]}")


def _events(platform: Platform, reason: str) -> list[dict[str, Any]]:
    items = kubectl_json("-n", platform.ns, "get", "events")["items"]
    return [
        e
        for e in items
        if e.get("reason") == reason
        and platform.full("orders-worker") in e["involvedObject"]["name"]
    ]


def test_a_burst_scales_the_orders_workers_up_then_down_after_the_window_idle_pods_first(
    platform: Platform,
) -> None:
    worker = platform.full("orders-worker")
    eventually(lambda: replicas(platform.ns, worker) == 1, WINDOW_S + 60, what="the pool at rest")
    started = time.monotonic()
    with ReplicaWatch(platform.ns, worker) as watch:
        ids = platform.place(300, concurrency=16)
        accepted_s = time.monotonic() - started
        eventually(lambda: len(platform.fulfilled(ids)) == len(ids), 600, 2, what="300 fulfilled")
    most, first_step = watch.most, watch.first_above(1)
    fulfilled_s = time.monotonic() - started
    note(
        f"300 orders accepted in {accepted_s:.0f} s, "
        f"fulfilled in {fulfilled_s:.0f} s ({300 / fulfilled_s:.1f}/s)"
    )
    assert most > 1 and first_step is not None
    note(f"workers 1 -> {most}; first step {first_step - started:.1f} s after the burst began")
    settled = time.monotonic()
    eventually(lambda: replicas(platform.ns, worker) == 1, WINDOW_S + 120, 2, what="back to 1")
    note(f"back to 1 replica {time.monotonic() - settled:.0f} s after the last order")
    scaled_down = _events(platform, "ScaledDown")
    assert scaled_down, "no ScaledDown event"
    assert any("idle pods go first" in e["message"] for e in scaled_down), [
        e["message"] for e in scaled_down
    ]
    charges = platform.charges()
    assert all(charges[i] == 1 for i in ids)


def test_a_paused_pool_is_left_alone_and_scales_once_unpaused(platform: Platform) -> None:
    """While paused, a queue far past one replica's target moves nothing; unpaused, the pool
    grows at the next polls."""
    autoscaler = platform.full("orders-worker")
    eventually(lambda: replicas(platform.ns, autoscaler) == 1, WINDOW_S + 60, what="at rest")
    kubectl("-n", platform.ns, "annotate", "wa", autoscaler, "flotilla.dev/paused=true")
    depths: list[int] = []

    def depth() -> int:
        status = kubectl_json("-n", platform.ns, "get", "wa", autoscaler).get("status", {})
        return int(status.get("depth", 0))

    try:
        with ReplicaWatch(platform.ns, autoscaler) as watch:
            ids = platform.place(200, concurrency=24)
            depths.append(depth())
            time.sleep(3 * POLL_S)
            depths.append(depth())
        target = kubectl_json("-n", platform.ns, "get", "wa", autoscaler)["spec"][
            "targetPerReplica"
        ]
        status = kubectl_json("-n", platform.ns, "get", "wa", autoscaler)["status"]
        paused = next(c for c in status["conditions"] if c["type"] == "Paused")
        note(f"paused: {watch.most} replica while the queue held {max(depths)} (target {target})")
        assert paused["status"] == "True" and watch.most == 1
        assert max(depths) > target  # the queue asked for more: only the pause held it back
    finally:
        kubectl("-n", platform.ns, "annotate", "wa", autoscaler, "flotilla.dev/paused-")
    if depth() > target:
        eventually(lambda: replicas(platform.ns, autoscaler) > 1, 30, 0.5, what="a scale-up")
    platform.wait_fulfilled(ids)
    assert all(platform.charges()[i] == 1 for i in ids)


def test_another_replica_acts_within_the_lease_when_the_leader_is_killed(
    platform: Platform,
) -> None:
    """The acting operator's pod is force-deleted; within its lease another replica acts: the
    standby, or the Deployment's replacement pod if it drew a higher priority (kopf peering
    lets the highest live priority act)."""
    (leader,) = [p for p in platform.operators() if p["metadata"]["labels"].get(ROLE) == "active"]
    gone = leader["metadata"]["name"]
    killed = time.monotonic()
    kubectl("-n", platform.ns, "delete", "pod", gone, "--grace-period=0", "--force")

    def acting() -> str | None:
        active = [
            p["metadata"]["name"]
            for p in platform.operators()
            if p["metadata"]["labels"].get(ROLE) == "active" and p["metadata"]["name"] != gone
        ]
        return active[0] if len(active) == 1 else None

    name = eventually(acting, LEASE_S + 3 * POLL_S + 5, 0.5, what="another replica acting")
    took = time.monotonic() - killed
    note(f"{name} acting {took:.1f} s after {gone} was force-deleted (lease {LEASE_S} s)")
    assert "Resuming operations" in kubectl("-n", platform.ns, "logs", name)
    # and it scales: the pool follows a new burst
    ids = platform.place(100, concurrency=16)
    worker = platform.full("orders-worker")
    eventually(lambda: replicas(platform.ns, worker) > 1, 60, 0.5, what="a scale-up by it")
    platform.wait_fulfilled(ids)
    eventually(
        lambda: len(platform.operators()) == 2 and all(map(ready, platform.operators())),
        120,
        what="two ready operators again",
    )


def test_a_worker_deleted_mid_burst_and_a_rollout_restart_lose_no_order_and_charge_each_once(
    platform: Platform,
) -> None:
    worker = platform.full("orders-worker")
    ids: list[str] = []
    ids += platform.place(100, concurrency=16)
    victim = platform.workers()[0]["metadata"]["name"]
    kubectl("-n", platform.ns, "delete", "pod", victim, "--wait=false")
    ids += platform.place(100, concurrency=16)
    kubectl("-n", platform.ns, "rollout", "restart", f"deployment/{worker}")
    ids += platform.place(50, concurrency=16)
    kubectl(
        "-n",
        platform.ns,
        "rollout",
        "status",
        f"deployment/{worker}",
        "--timeout=10m",
        timeout_s=620,
    )
    took = platform.wait_fulfilled(ids, timeout_s=600)
    charges = platform.charges()
    twice = [i for i in ids if charges[i] != 1]
    note(
        f"{len(ids)} orders through a pod deletion ({victim}) and a rollout restart: "
        f"{len(platform.fulfilled(ids))} fulfilled, {sum(charges[i] for i in ids)} charges"
    )
    assert twice == [] and len(set(ids)) == len(ids) == 250
    note(f"all fulfilled {took:.0f} s after the rollout finished")


def test_postgresql_never_ran_out_of_connections(platform: Platform) -> None:
    log = kubectl("-n", platform.ns, "logs", f"{platform.full('postgresql')}-0")
    refused = [
        line
        for line in log.splitlines()
        if "too many clients" in line or "remaining connection slots" in line
    ]
    note(f"PostgreSQL 'too many clients': {len(refused)}")
    assert refused == []


# --- upgrade and uninstall ----------------------------------------------------------------


def _secrets(platform: Platform) -> dict[str, dict[str, str]]:
    items = kubectl_json(
        "-n",
        platform.ns,
        "get",
        "secrets",
        "-l",
        f"app.kubernetes.io/instance={platform.release.name}",
    )
    return {
        s["metadata"]["name"]: s.get("data", {}) for s in items["items"] if s["type"] == "Opaque"
    }


def test_helm_upgrade_keeps_the_secrets_and_the_platform_keeps_working(platform: Platform) -> None:
    before = _secrets(platform)
    started = time.monotonic()
    release = platform.release
    run(
        [
            release.helm,
            "upgrade",
            release.name,
            str(CHART),
            "-n",
            platform.ns,
            *release.helm_args,
            "--set",
            "logLevel=WARNING",
            "--wait",
            "--timeout",
            "10m",
        ],
        timeout_s=660,
    )
    note(f"helm upgrade --wait: {time.monotonic() - started:.0f} s; {len(before)} secrets kept")
    assert _secrets(platform) == before
    platform.edge.restart()
    platform.payments.restart()
    ids = platform.place(10, concurrency=5)  # with the same API key
    platform.wait_fulfilled(ids)


def test_helm_uninstall_leaves_nothing_behind(platform: Platform) -> None:
    """Every object of the release goes (its pods once their grace periods end) but the
    StatefulSets' data volumes, which Helm never deletes (docs/kubernetes.md); the CRDs stay,
    as Helm leaves ``crds/`` alone."""
    for forward in (platform.edge, platform.console, platform.payments):
        forward.stop()
    release = platform.release
    started = time.monotonic()
    run([release.helm, "uninstall", release.name, "-n", platform.ns, "--wait"], timeout_s=300)
    kinds = kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]

    def left() -> list[str]:
        found = kubectl("-n", platform.ns, "get", ",".join(kinds), "-o", "name")
        return [n for n in found.split() if f"/{release.name}-" in n or f"-{release.name}-" in n]

    def only_volumes() -> list[str] | None:
        rest = left()
        return rest if all(n.startswith("persistentvolumeclaim/") for n in rest) else None

    grace = 75 + 30  # the longest terminationGracePeriodSeconds (notifications-worker) + margin
    leftovers = eventually(
        lambda: only_volumes() is not None and (only_volumes() or ["-"]),
        grace + 60,
        2,
        what=f"nothing of {release.name} left but data volumes",
    )
    volumes = [n for n in leftovers if n != "-"]
    note(
        f"helm uninstall: every object gone {time.monotonic() - started:.0f} s later but "
        f"{len(volumes)} data volumes (StatefulSet claims, kept by design)"
    )
    assert all(n.startswith(f"persistentvolumeclaim/data-{release.name}-") for n in volumes)
    crd = json.loads(kubectl("get", "crd", "workerautoscalers.flotilla.dev", "-o", "json"))
    assert crd["metadata"]["name"]
