"""The chart's connection budget: every pod that uses PostgreSQL, at its most, times its pool,
against the server's max_connections (charts/flotilla/templates/_budget.tpl). The real helm
renders; the numbers are checked against the rendered Deployments and WorkerAutoscalers and
against the code that sizes each process' pool (flotilla.core.pool_size_for). That the
processes keep to it against a real PostgreSQL is tests/e2e/test_connection_budget.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.contracts.catalogue import concurrency
from flotilla.core import pool_size_for
from tests.charts.test_chart import CHART, helm, of_kind, render

pytestmark = pytest.mark.integration

DATABASES = ("orders", "inventory", "payments")


def values_with(tmp_path: Path, **changes: Any) -> Path:
    """A values file changing components by name: ``orders_worker={...}`` merges into that
    component's choices in values.yaml (components is a map: helm merges it)."""
    components = {name.replace("_", "-"): change for name, change in changes.items()}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"components": components}))
    return path


def template(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart (or another copy or package of it) as release
    ``flotilla`` in namespace ``shop``."""
    return subprocess.run(
        [helm(), "template", "flotilla", str(chart), "--namespace", "shop", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def budget_of(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    budget: dict[str, Any] = json.loads(
        of_kind(docs, "ConfigMap")["flotilla-connection-budget"]["data"]["budget.json"]
    )
    return budget


def test_the_budget_counts_every_database_pod_at_its_most_times_the_pool_its_process_opens() -> (
    None
):
    """Recomputed from the rendered objects alone: which Deployments get a database URL,
    their replicas (an autoscaled one's maxReplicas), their surge, their thread settings, and
    flotilla.core.pool_size_for, which each process uses to size its pool."""
    docs = render("defaults")
    autoscalers = {
        wa["spec"]["scaleTargetRef"]["name"]: wa["spec"]["maxReplicas"]
        for wa in of_kind(docs, "WorkerAutoscaler").values()
    }
    expected = {}
    for name, deployment in of_kind(docs, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if not any(key.endswith("_DATABASE_URL") for key in env):
            continue
        serves_http = any(p["name"] == "http" for p in container.get("ports", []))
        threads = next(
            int(value)
            for key, value in env.items()
            if key.endswith(("_REQUEST_THREADS", "_WORKER_THREADS"))
            and key.split("_")[-2] == ("REQUEST" if serves_http else "WORKER")
        )
        replicas = autoscalers.get(name, deployment["spec"].get("replicas"))
        surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        component = name.removeprefix("flotilla-")
        expected[component] = (replicas + surge, pool_size_for(threads, serves_http=serves_http))
    budget = budget_of(docs)
    counted = {row["component"]: (row["pods"], row["perPod"]) for row in budget["components"]}
    assert counted == expected
    assert set(counted) == {"orders-api", "inventory-api", "payments-api", "orders-worker"}
    assert budget["total"] == sum(pods * per_pod for pods, per_pod in counted.values())
    assert budget["total"] <= budget["available"] == 150 - 10


def test_the_charts_postgresql_runs_with_the_budgets_max_connections() -> None:
    docs = render("defaults")
    (container,) = of_kind(docs, "StatefulSet")["flotilla-postgresql"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["args"] == ["postgres", "-c", "max_connections=150"]
    raised = template(
        "--set", "postgresql.maxConnections=300", "--show-only", "templates/datastores.yaml"
    )
    assert raised.returncode == 0, raised.stderr
    assert "max_connections=300" in raised.stdout


def test_raising_max_replicas_past_the_budget_is_refused_in_one_line_with_the_numbers(
    tmp_path: Path,
) -> None:
    values = values_with(tmp_path, orders_worker={"autoscaling": {"maxReplicas": 40}})
    refused = template("-f", str(values))
    assert refused.returncode != 0
    (line,) = [x for x in refused.stderr.splitlines() if "connection budget" in x]
    assert "orders-worker 41x5" in line and "over by" in line
    assert "= 277 connections at full scale" in line  # 3x10 + 2x6 + 3x10 + 41x5
    assert "max_connections 150 - 10 reserved = 140" in line
    assert "raise postgresql.maxConnections" in line
    # the same release fits once the server allows it
    allowed = template("-f", str(values), "--set", "postgresql.maxConnections=300")
    assert allowed.returncode == 0, allowed.stderr


def test_more_threads_or_replicas_count_and_an_external_server_is_checked_the_same(
    tmp_path: Path,
) -> None:
    values = values_with(tmp_path, inventory_api={"settings": {"request_threads": "30"}})
    refused = template("-f", str(values), "--set", "replicaCounts.inventory-api=4")
    assert "inventory-api 5x32" in refused.stderr and refused.returncode != 0
    database = "postgresql+psycopg://u:p@db:5432/"
    external = template(
        "--set", "postgresql.enabled=false",
        "--set", "postgresql.maxConnections=100",
        *(f"--set=postgresql.externalUrls.{db}={database}{db}" for db in DATABASES),
    )  # fmt: skip
    assert external.returncode != 0 and "max_connections 100 - 10 reserved = 90" in external.stderr


def test_a_component_the_release_gives_no_threads_is_counted_at_the_catalogues_default(
    tmp_path: Path,
) -> None:
    """values.yaml gives payments-api 4 request threads; without that choice the pod runs with
    the catalogue's default, and the budget counts the pool of that same number."""
    # null removes values.yaml's choice (helm's way to unset a default)
    path = values_with(tmp_path, payments_api={"settings": {"request_threads": None}})
    rendered = template("-f", str(path))
    assert rendered.returncode == 0, rendered.stderr
    docs = tuple(d for d in yaml.safe_load_all(rendered.stdout) if d)
    (container,) = of_kind(docs, "Deployment")["flotilla-payments-api"]["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    threads = concurrency("payments-api")
    assert env["FLOTILLA_PAYMENTS_REQUEST_THREADS"] == str(threads)
    counted = {row["component"]: row["perPod"] for row in budget_of(docs)["components"]}
    assert counted["payments-api"] == pool_size_for(threads, serves_http=True)
