"""The chart's own pods, as ``helm template`` renders them, run from the images built here.

Everything is real but the cluster: the images, their commands, env, Secrets, probes, init
containers, security contexts and memory limits are the chart's; Redis and PostgreSQL are
stand-ins from Debian's packages (their images cannot be pulled); ``tests/support/kubelet.py``
plays the kubelet, with no API server, scheduler, kube-proxy or NetworkPolicy enforcement.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.containers.conftest import NAMESPACE, RELEASE, pod, published
from tests.support.kubelet import Kubelet, Rendered, eventually

pytestmark = pytest.mark.containers

ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-KAYAK", "quantity": 1}]}
#: where a process might write: only the volumes its pod mounts may take a file
PATHS = ["/", "/app", "/app/.venv", "/usr", "/etc", "/var", "/tmp", "/data", "/nonexistent"]
#: the services one order's trace crosses in the cluster
TRACED = {"edge", "orders-api", "inventory-api", "payments-api", "orders-worker"}


def _key(cluster: Kubelet) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.rendered.secret(f'{RELEASE}-auth')['api-key']}"}


def _edge(cluster: Kubelet) -> httpx.Client:
    return httpx.Client(
        base_url=published(cluster, "edge", 8080), headers=_key(cluster), timeout=10
    )


def _order(client: httpx.Client, order_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/api/orders/{order_id}").json()
    return answer


def _trace(cluster: Kubelet, trace_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{published(cluster, 'console', 8090)}/api/traces/{trace_id}", timeout=5)
    if answer.status_code != 200:
        return None
    trace: dict[str, Any] = answer.json()
    services = {s["service"] for s in trace["spans"]}
    ids = {s["span_id"] for s in trace["spans"]}
    linked = all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
    return trace if services >= TRACED | {"notifications-worker"} and linked else None


def _trace_logs(cluster: Kubelet, trace_id: str) -> list[dict[str, Any]]:
    console = published(cluster, "console", 8090)
    logs: list[dict[str, Any]] = httpx.get(f"{console}/api/traces/{trace_id}").json()["logs"]
    return logs


def test_on_a_first_install_pods_wait_for_a_database_that_starts_20_s_after_them(
    rendered: Rendered, substitutes: dict[str, str]
) -> None:
    """A cluster starts every pod at once and the database is the slow one: each pod's
    migration (its init container) waits for it, says so, and succeeds on its first run; no
    container restarts. Its own pods, before the shared platform of the tests below."""
    kubelet = Kubelet(rendered, namespace=NAMESPACE, substitutes=substitutes)
    migrating = [f"{RELEASE}-{name}" for name in ("orders-api", "inventory-api", "payments-api")]
    try:
        with ThreadPoolExecutor(len(migrating)) as starting:
            pending = [starting.submit(kubelet.start, name) for name in migrating]
            time.sleep(20)
            (database,) = kubelet.start_all([f"{RELEASE}-postgresql"])
            pods = [job.result(timeout=300) for job in pending]
        kubelet.wait_ready([*pods, database], timeout_s=180)
        for started in pods:
            assert started.init_runs == [("migrate", 0)], kubelet.describe([started.name])
            assert all(c.restarts == 0 for c in started.containers.values()), started.name
            ((_, log),) = started.init_logs
            assert "waiting for the database at" in log and "takes connections after" in log
    finally:
        kubelet.close()


def test_every_pod_runs_as_10001_on_a_read_only_root_with_only_the_chart_mounts_writable(
    cluster: Kubelet,
) -> None:
    probe = (
        "import os, json\n"
        f"paths = {PATHS!r}\n"
        "ok = []\n"
        "for p in paths:\n"
        "    try:\n"
        "        open(os.path.join(p, '.w'), 'w').close(); os.remove(os.path.join(p, '.w'))\n"
        "        ok.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'writable': ok}))\n"
    )
    ours = [p for p in cluster.pods.values() if not p.workload.endswith(("redis", "postgresql"))]
    assert len(ours) == 8  # edge, 3 APIs, console, 2 workers, mail sink
    for running in ours:
        (spec,) = running.spec["containers"]
        mounts = {m["mountPath"] for m in spec.get("volumeMounts") or []}
        (state,) = running.containers.values()
        result = state.container.exec_run(["python", "-c", probe])
        assert result.exit_code == 0, result.output
        seen = json.loads(result.output)
        assert (seen["uid"], seen["gid"]) == (10001, 10001), running.name
        assert set(seen["writable"]) == mounts & set(PATHS), running.name
        config = state.container.attrs["HostConfig"]
        assert config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
        assert config["Memory"] > 0  # the chart's memory limit applies


def test_an_order_through_the_edge_is_fulfilled_and_traced_across_the_services(
    cluster: Kubelet,
) -> None:
    with _edge(cluster) as edge:
        answer = edge.post("/api/orders", json=ORDER)
        assert answer.status_code == 202, answer.text
        order_id, trace_id = answer.json()["id"], answer.headers["x-trace-id"]
        eventually(lambda: _order(edge, order_id)["status"] == "fulfilled", timeout_s=60)
    trace = eventually(lambda: _trace(cluster, trace_id), timeout_s=60)
    roots = [s for s in trace["spans"] if s["parent_span_id"] is None]
    assert [r["service"] for r in roots] == ["edge"]
    assert {"publish orders", "process orders", "smtp.send"} <= {s["name"] for s in trace["spans"]}
    # each pod's log records reach the console too (OTLP, with the ingest token), in the trace
    logged = {"inventory-api", "orders-api", "orders-worker", "notifications-worker"}
    eventually(lambda: logged <= {x["service"] for x in _trace_logs(cluster, trace_id)}, 30)
    # the mail sink's pod wrote the confirmation where the chart mounts its volume
    sink = pod(cluster, "mail-sink")
    (state,) = sink.containers.values()
    listing = state.container.exec_run(["sh", "-c", "cat /data/mail/*.eml"]).output.decode()
    assert order_id in listing and "ada@example.com" in listing


def test_the_charts_helm_test_pod_passes(cluster: Kubelet) -> None:
    (hook,) = cluster.rendered.hook_pods("test")
    test_pod = cluster.start(hook["metadata"]["name"])
    code = cluster.wait_exit(test_pod, timeout_s=120)
    log = cluster.logs(test_pod)
    assert code == 0, log
    assert "order fulfilled; trace" in log


def test_a_stopped_worker_drains_its_job_within_its_grace_period_and_loses_nothing(
    cluster: Kubelet,
) -> None:
    """``docker stop`` as the kubelet deletes a pod: SIGTERM, SIGKILL after the pod's
    terminationGracePeriodSeconds. The payment provider is made slow (4 s), so the worker
    holds the order's job when it is told to stop; it must finish it, exit 0 within the grace
    period, and the order must be fulfilled with exactly one charge."""
    payments = f"http://{pod(cluster, 'payments-api').ip}:8003"
    worker = pod(cluster, "orders-worker")
    grace = int(worker.spec["terminationGracePeriodSeconds"])
    httpx.put(f"{payments}/faults", json={"latency_ms": 4000}, timeout=5).raise_for_status()
    try:
        with _edge(cluster) as edge:
            answer = edge.post("/api/orders", json=ORDER)
            assert answer.status_code == 202, answer.text
            order_id = answer.json()["id"]
            eventually(lambda: _order(edge, order_id)["status"] == "fulfilling", 30, 0.05)
            codes = cluster.delete(worker)
            # the Deployment's controller would start a replacement: so does the test
            cluster.start(worker.workload)
            eventually(lambda: _order(edge, order_id)["status"] == "fulfilled", timeout_s=60)
    finally:
        httpx.put(f"{payments}/faults", json={"latency_ms": 0}, timeout=5)
    assert codes == {"orders-worker": 0}
    assert worker.deleted_in_s is not None and worker.deleted_in_s < grace
    (state,) = worker.containers.values()
    drain = [
        json.loads(line)
        for line in state.container.logs().decode().splitlines()
        if '"worker draining"' in line
    ]
    assert drain and drain[0]["timeout_s"] <= grace  # it plans to finish inside the grace period
    charges = httpx.get(f"{payments}/charges", params={"order_id": order_id}, timeout=5).json()
    assert len(charges["items"]) == 1


def test_the_pods_carry_the_charts_namespace_and_service_names(cluster: Kubelet) -> None:
    """What the components read of their pod: its name as HOSTNAME (the operator's per-pod
    in-flight count needs it) and the Services' short and namespaced names resolving."""
    worker = pod(cluster, "orders-worker")
    (state,) = worker.containers.values()
    script = (
        "import os, socket; print(os.environ['HOSTNAME']);"
        f"print(socket.gethostbyname('{RELEASE}-inventory-api.{NAMESPACE}.svc.cluster.local'))"
    )
    out = state.container.exec_run(["python", "-c", script]).output.decode().split()
    assert out == [worker.name, pod(cluster, "inventory-api").ip]
