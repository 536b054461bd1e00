"""The Helm chart, verified without a cluster: the real ``helm`` renders it with several value
sets, and every object is checked the way an API server and a security review would.

No API server can run here: objects are validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict), custom objects against their CRD (tests.support.crd), and the
manifests are scanned by checkov. The kind workflow installs the chart for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from flotilla.console import ConsoleSettings
from flotilla.edge import EdgeSettings
from flotilla.inventory import InventorySettings
from flotilla.notifications import NotificationsSettings
from flotilla.operator.kube import OperatorSettings
from flotilla.orders import OrdersSettings
from flotilla.payments import PaymentsSettings
from tests.support.crd import CHART_CRD_PATH, PODMONITOR_CRD_PATH, admission_errors
from tests.support.services import in_ci

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flotilla"
KUBERNETES = "1.35.0"
CUSTOM = {"WorkerAutoscaler", "KopfPeering", "PodMonitor"}
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "external-redis-and-postgres": [
        "--set", "broker.externalUrl=redis://redis.example.net:6380/0",
        "--set", "postgresql.enabled=false",
        "--set", "postgresql.externalUrls.orders=postgresql+psycopg://u:p@db.example.net:5432/orders",
        "--set", "postgresql.externalUrls.inventory=postgresql+psycopg://u:p@db.example.net:5432/inventory",
        "--set", "postgresql.externalUrls.payments=postgresql+psycopg://u:p@db.example.net:5432/payments",
    ],
    "rabbitmq": ["--set", "broker.kind=rabbitmq"],
    "no-jaeger-ingress-on": [
        "--set", "tracing.jaeger.enabled=false",
        "--set", "ingress.enabled=true",
        "--set", "ingress.className=nginx",
        "--set", "smtp.sink=false",
    ],
    "kind": ["-f", str(CHART / "ci" / "kind-values.yaml")],
    "containers": ["-f", str(CHART / "ci" / "containers-values.yaml")],
    "pod-monitor": [
        "--set", "metrics.podMonitor.enabled=true",
        "--set", "metrics.podMonitor.labels.release=kube-prometheus-stack",
        "--set", "metrics.dashboards.enabled=true",
        "--set", "metrics.dashboards.annotations.grafana_folder=Flotilla",
    ],
    "logs-not-exported": ["--set", "logs.otlp.enabled=false"],
    "metrics-through-the-collector": [
        "--set", "metrics.otlp.enabled=true",
        "--set", "metrics.otlp.spanMetrics=true",
        "--set", "tracing.collector.image=otel/opentelemetry-collector-contrib:0.141.0",
        "--set", "networkPolicies.adminFrom[0].namespaceSelector.matchLabels.team=monitoring",
    ],
}  # fmt: skip
SETTINGS: dict[str, type[BaseSettings]] = {
    "EDGE": EdgeSettings,
    "ORDERS": OrdersSettings,
    "INVENTORY": InventorySettings,
    "NOTIFICATIONS": NotificationsSettings,
    "PAYMENTS": PaymentsSettings,
    "CONSOLE": ConsoleSettings,
    "OPERATOR": OperatorSettings,
}
OTEL = {
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SDK_DISABLED",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "CONSOLE_INGEST_TOKEN",  # spans straight to the console: $(VAR) in the headers above
}


@cache
def helm() -> str:
    from scripts.helm import TOOL
    from scripts.helm import helm as find

    path = find() if in_ci() or TOOL.exists() else None
    if path is None:
        pytest.skip("no helm binary: run `make helm` (make test does)")
    return str(path)


@cache
def render(value_set: str) -> tuple[dict[str, Any], ...]:
    args = [helm(), "template", "flotilla", str(CHART), "--namespace", "shop", "--include-crds"]
    result = subprocess.run(
        [*args, *VALUE_SETS[value_set]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append(
                (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
            )
        elif doc["kind"] == "Pod":
            specs.append((f"Pod/{doc['metadata']['name']}", doc["spec"]))
    return specs


def test_helm_lint_passes_strict() -> None:
    result = subprocess.run(
        [helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_defaults_render_the_whole_platform() -> None:
    docs = render("defaults")
    deployments = of_kind(docs, "Deployment")
    for component in (
        "edge", "orders-api", "inventory-api", "payments-api", "orders-worker",
        "notifications-worker", "console", "operator", "otel-collector", "jaeger",
    ):  # fmt: skip
        assert f"flotilla-{component}" in deployments
    crd = of_kind(docs, "CustomResourceDefinition")["workerautoscalers.flotilla.dev"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert len(version["additionalPrinterColumns"]) >= 4
    autoscalers = of_kind(docs, "WorkerAutoscaler")
    assert set(autoscalers) == {"flotilla-orders-worker", "flotilla-notifications-worker"}
    assert of_kind(docs, "NetworkPolicy")
    # the schema is brought to head before any pod that uses the database starts
    for name in ("orders-api", "orders-worker", "inventory-api", "payments-api"):
        pod = deployments[f"flotilla-{name}"]["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"][-1] == "migrate", name
    assert not of_kind(docs, "Job")  # so `helm install --wait` cannot wait on a hook


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_valid_kubernetes(value_set: str) -> None:
    problems = []
    for doc in render(value_set):
        if doc["kind"] in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert problems == []


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_worker_autoscaler_is_admitted_by_its_crd(value_set: str) -> None:
    for name, autoscaler in of_kind(render(value_set), "WorkerAutoscaler").items():
        assert admission_errors(autoscaler) == [], name


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_container_is_hardened_limited_and_probed(value_set: str) -> None:
    docs = render(value_set)
    for where, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        long_running = not where.startswith(("Job/", "Pod/"))
        for container in spec.get("initContainers", []) + spec["containers"]:
            at = f"{where}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, at
            assert security["readOnlyRootFilesystem"] is True, at
            assert security["capabilities"] == {"drop": ["ALL"]}, at
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, at
            assert container["resources"]["limits"]["memory"], at
            if long_running and container in spec["containers"]:  # init containers finish
                assert "livenessProbe" in container or "readinessProbe" in container, at


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_rbac_rule_grants_a_wildcard_and_nothing_is_cluster_wide(value_set: str) -> None:
    docs = render(value_set)
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    for role in of_kind(docs, "Role").values():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule
    (role,) = of_kind(docs, "Role").values()
    secrets = next(r for r in role["rules"] if r["resources"] == ["secrets"])
    assert secrets["verbs"] == ["get"] and secrets["resourceNames"] == ["flotilla-broker"]
    pods = next(r for r in role["rules"] if r["resources"] == ["pods"])
    assert pods["verbs"] == ["get", "list", "patch"]  # pod-deletion-cost before a scale-in


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_autoscaled_deployments_leave_replicas_to_the_operator(value_set: str) -> None:
    docs = render(value_set)
    deployments = of_kind(docs, "Deployment")
    for autoscaler in of_kind(docs, "WorkerAutoscaler").values():
        target = deployments[autoscaler["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], target["metadata"]["name"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env, secret references replaced by a plausible value of their kind."""
    placeholders = {
        "api-keys": "demo:" + "a" * 64 + ":orders:read,operator:" + "b" * 64 + ":orders:admin",
        "jwt-secret": "x" * 48,
        "token": "t" * 40,
        "url": "redis://redis:6379/0",
        "orders-database-url": "postgresql+psycopg://u:p@db:5432/orders",
        "inventory-database-url": "postgresql+psycopg://u:p@db:5432/inventory",
        "payments-database-url": "postgresql+psycopg://u:p@db:5432/payments",
    }
    fields = {"metadata.name": "flotilla-operator-7d4b9-x2k4p", "metadata.namespace": "shop"}
    return {
        e["name"]: e["value"]
        if "value" in e
        else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        if "fieldRef" in e["valueFrom"]
        else placeholders[e["valueFrom"]["secretKeyRef"]["key"]]
        for e in container["env"]
    }


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_each_component_gets_exactly_settings_its_class_reads_and_accepts(
    value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every FLOTILLA_* variable is a field of the component's settings class, every other one
    is a standard OTEL_* variable, and the class loads the rendered values in production mode."""
    for name, deployment in of_kind(render(value_set), "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = _env(container) if "env" in container else {}
        if name.endswith("otel-collector"):  # not ours: only the token its config reads
            assert set(env) == {"CONSOLE_INGEST_TOKEN"}
            continue
        prefixes = {k.split("_")[1] for k in env if k.startswith("FLOTILLA_")}
        assert set(env) - OTEL == {k for k in env if k.startswith("FLOTILLA_")}, name
        if not prefixes:
            continue
        (prefix,) = prefixes
        settings_class = SETTINGS[prefix]
        fields = {f"FLOTILLA_{prefix}_{f.upper()}" for f in settings_class.model_fields}
        assert {k for k in env if k.startswith("FLOTILLA_")} <= fields, name
        for key in fields:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        loaded = settings_class()
        assert loaded.environment == "production", name


def _settings_of(deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings class of a rendered Deployment, loaded from the env the chart gives it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    (prefix,) = {k.split("_")[1] for k in env if k.startswith("FLOTILLA_")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return SETTINGS[prefix]()


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_traced_component_serves_metrics_on_a_declared_port(
    value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APIs and workers alike: the container declares a port named ``metrics`` (the edge:
    ``admin``) and the settings the pod loads serve /metrics on that port, on every address
    (a scrape comes from another pod). The console, which traces nothing, has none."""
    for name, deployment in of_kind(render(value_set), "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = _env(container) if "env" in container else {}
        if not any(k.startswith("FLOTILLA_") for k in env):
            continue  # not a component of ours (datastores, collector, jaeger, mail sink)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        settings = _settings_of(deployment, monkeypatch)
        if name.endswith("-console"):
            assert "metrics" not in ports and settings.metrics_port is None
        elif name.endswith("-edge"):
            assert "metrics" not in ports and settings.admin_port == ports["admin"]
            assert settings.admin_host == "0.0.0.0"
        else:
            assert settings.metrics_port == ports["metrics"], name
            assert settings.metrics_host == "0.0.0.0", name


def test_a_pod_monitor_is_rendered_only_when_asked_and_its_crd_admits_it() -> None:
    """Off by default (without the Prometheus Operator the kind does not exist); when enabled,
    the Prometheus Operator's own CRD schema admits it, it selects this release's pods, and
    every pod that serves metrics has a port it scrapes (the APIs', workers' and operator's
    "metrics", the edge's "admin")."""
    assert of_kind(render("defaults"), "PodMonitor") == {}
    docs = render("pod-monitor")
    (monitor,) = of_kind(docs, "PodMonitor").values()
    assert admission_errors(monitor, PODMONITOR_CRD_PATH) == []
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    scraped = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    wanted = monitor["spec"]["selector"]["matchLabels"]
    serving = 0
    for name, deployment in of_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert wanted.items() <= labels.items(), name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = _env(container) if "env" in container else {}
        ports = {p["name"] for p in container.get("ports", [])}
        metrics_env = any(
            k.endswith("_METRICS_PORT") or k == "FLOTILLA_EDGE_ADMIN_PORT" for k in env
        )
        if metrics_env or name.endswith("-operator"):
            assert ports & scraped, f"{name} serves metrics on no port the monitor scrapes"
            serving += 1
    # edge, orders-api, payments-api, inventory-api, the two workers, the operator
    assert serving == 7


def test_who_may_scrape_reaches_every_metrics_port_and_nothing_else_does() -> None:
    """With networkPolicies.adminFrom (the namespace Prometheus runs in), a NetworkPolicy lets
    those peers reach each pod's metrics port, the operator's included; no other peer may."""
    docs = render("metrics-through-the-collector")
    policies = of_kind(docs, "NetworkPolicy").values()
    for name, deployment in of_kind(docs, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        port = ports.get("metrics") or ports.get("admin")
        if port is None or name.endswith("otel-collector"):
            continue
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        opened = [
            rule["from"]
            for policy in policies
            if policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            for rule in policy["spec"].get("ingress", [])
            if {"port": port, "protocol": "TCP"} in rule.get("ports", [])
        ]
        assert opened == [[{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]], name


def test_the_dashboards_ship_as_configmaps_for_grafanas_sidecar_when_asked() -> None:
    """One ConfigMap per dashboard in dashboards/, labelled for Grafana's sidecar, holding
    that file's JSON unchanged (tests/core/test_metrics.py checks their queries); none by
    default. Each dashboard has its own uid, a Prometheus datasource variable every panel
    uses, and panels that do not overlap."""

    def dashboards(value_set: str) -> dict[str, dict[str, Any]]:
        maps = of_kind(render(value_set), "ConfigMap").values()
        return {
            key: json.loads(value)
            for cm in maps
            if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
            for key, value in cm["data"].items()
        }

    assert dashboards("defaults") == {}
    shipped = dashboards("pod-monitor")
    files = {
        f"flotilla-{p.stem}.json": json.loads(p.read_text())
        for p in (CHART / "dashboards").glob("*.json")
    }
    assert (
        set(shipped)
        == set(files)
        == {"flotilla-overview.json", "flotilla-queues.json", "flotilla-edge.json"}
    )
    assert shipped == files
    assert len({board["uid"] for board in shipped.values()}) == len(shipped)
    for name, board in shipped.items():
        (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == "prometheus", name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
            box = panel["gridPos"]
            mine = {
                (x, y)
                for x in range(box["x"], box["x"] + box["w"])
                for y in range(box["y"], box["y"] + box["h"])
            }
            assert not mine & cells, (name, panel["title"], "overlaps another panel")
            cells |= mine


def _collector_config(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (config_map,) = [
        cm for name, cm in of_kind(docs, "ConfigMap").items() if name.endswith("otel-collector")
    ]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return config


def test_logs_go_to_the_console_through_the_collectors_logs_pipeline_unless_turned_off() -> None:
    """By default every traced component exports its log records over OTLP, and the collector
    has a logs pipeline whose only exporter is the console (Jaeger takes no logs) with every
    component it names declared; with logs.otlp.enabled=false none exports and the collector
    has no logs pipeline (a push to it would fail)."""

    def exporters(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
        return {
            name.removeprefix("flotilla-"): _env(container)["OTEL_LOGS_EXPORTER"]
            for name, deployment in of_kind(docs, "Deployment").items()
            for container in deployment["spec"]["template"]["spec"]["containers"]
            if "env" in container and "OTEL_EXPORTER_OTLP_ENDPOINT" in _env(container)
        }

    defaults = render("defaults")
    traced = {"edge", "orders-api", "payments-api", "inventory-api", "orders-worker",
              "notifications-worker", "operator"}  # fmt: skip
    assert exporters(defaults) == dict.fromkeys(traced, "otlp")
    config = _collector_config(defaults)
    logs = config["service"]["pipelines"]["logs"]
    assert logs == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlphttp/console"],
    }
    for kind in ("receivers", "processors", "exporters"):
        assert set(logs[kind]) <= set(config[kind])
    off = render("logs-not-exported")
    assert exporters(off) == dict.fromkeys(traced, "none")
    assert "logs" not in _collector_config(off)["service"]["pipelines"]


def test_metrics_go_through_the_collector_only_when_asked() -> None:
    """By default the components' metrics are only scraped (no OTLP push: the collector has
    no metrics pipeline then, and every push would fail). With metrics.otlp.enabled every
    traced component also pushes OTLP metrics, the collector has a metrics pipeline serving
    them for Prometheus (with the span-metrics connector fed by the traces pipeline when
    asked), every component a pipeline names is declared, and adminFrom may reach the port."""

    def pushes(docs: tuple[dict[str, Any], ...]) -> set[str]:
        return {
            name
            for name, deployment in of_kind(docs, "Deployment").items()
            for container in deployment["spec"]["template"]["spec"]["containers"]
            if "env" in container
            and _env(container).get("OTEL_METRICS_EXPORTER") == "prometheus,otlp"
        }

    defaults = render("defaults")
    assert pushes(defaults) == set()
    assert "metrics" not in _collector_config(defaults)["service"]["pipelines"]
    docs = render("metrics-through-the-collector")
    assert {n.removeprefix("flotilla-") for n in pushes(docs)} == {
        "edge", "orders-api", "payments-api", "inventory-api", "orders-worker",
        "notifications-worker", "operator",
    }  # fmt: skip
    config = _collector_config(docs)
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert "spanmetrics" in pipelines["traces"]["exporters"]
    assert "spanmetrics" in pipelines["metrics"]["receivers"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config.get(kind, {}) or component in config["connectors"]
    refused = subprocess.run(
        [helm(), "template", "flotilla", str(CHART), "--set", "metrics.otlp.enabled=true",
         "--set", "metrics.otlp.spanMetrics=true"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "a contrib build" in refused.stderr  # the core image has no spanmetrics connector
    (collector,) = of_kind(docs, "Deployment")["flotilla-otel-collector"]["spec"]["template"][
        "spec"
    ]["containers"]
    assert {"name": "prom-export", "containerPort": 8889} in collector["ports"]
    policy = of_kind(docs, "NetworkPolicy")["flotilla-otel-collector-ingress"]
    assert any(
        rule.get("ports") == [{"port": 8889, "protocol": "TCP"}]
        and rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
        for rule in policy["spec"]["ingress"]
    )


def test_every_worker_drains_within_its_grace_period_as_the_code_declares_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each worker Deployment's actors are declared from the code with the settings the chart
    gives the pod; the drain flotilla.core computes for them (the longest time limit + margin)
    fits in the pod's terminationGracePeriodSeconds, so SIGKILL never cuts a job short."""
    from dramatiq.brokers.stub import StubBroker

    from flotilla.core import drain_timeout_for
    from flotilla.notifications import declare_actors as declare_notifications
    from flotilla.orders import declare_actors as declare_orders

    deployments = of_kind(render("defaults"), "Deployment")
    workers = {
        "flotilla-orders-worker": (lambda b, s: declare_orders(b, None, s), "orders"),  # type: ignore[arg-type]
        "flotilla-notifications-worker": (declare_notifications, "notifications"),
    }
    for name, (declare, queue) in workers.items():
        deployment = deployments[name]
        broker = StubBroker()
        declare(broker, _settings_of(deployment, monkeypatch))
        drain = drain_timeout_for(broker, [queue])
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert drain < grace, f"{name}: drains in {drain} s, killed after {grace} s"
        assert all(
            broker.get_actor(a).options.get("time_limit") for a in broker.get_declared_actors()
        ), f"{name}: an actor without a time limit (Dramatiq's default is 10 minutes)"


def test_external_brokers_and_databases_deploy_none_of_their_own() -> None:
    docs = render("external-redis-and-postgres")
    assert not of_kind(docs, "StatefulSet")
    secrets = of_kind(docs, "Secret")
    assert secrets["flotilla-broker"]["stringData"]["url"] == "redis://redis.example.net:6380/0"
    egress = of_kind(docs, "NetworkPolicy")["flotilla-orders-worker-egress"]["spec"]["egress"]
    assert {"ports": [{"port": 6380, "protocol": "TCP"}]} in egress


def test_the_rabbitmq_value_runs_rabbitmq_as_the_broker() -> None:
    docs = render("rabbitmq")
    assert "flotilla-rabbitmq" in of_kind(docs, "StatefulSet")
    assert of_kind(docs, "Secret")["flotilla-broker"]["stringData"]["url"].startswith("amqp://")


def test_on_rabbitmq_the_operator_reaches_the_management_api_and_only_it_does() -> None:
    """In-flight work is counted in the cluster: the management port is in the Service, each
    WorkerAutoscaler names the API, and the NetworkPolicies open it to the operator alone."""
    docs = render("rabbitmq")
    service = of_kind(docs, "Service")["flotilla-rabbitmq"]
    assert {"name": "management", "port": 15672, "targetPort": "management"} in service["spec"][
        "ports"
    ]
    for autoscaler in of_kind(docs, "WorkerAutoscaler").values():
        assert autoscaler["spec"]["broker"]["managementUrl"] == "http://flotilla-rabbitmq:15672"
    policies = of_kind(docs, "NetworkPolicy")
    ingress = policies["flotilla-rabbitmq-management-ingress"]["spec"]["ingress"]
    assert ingress == [
        {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "operator",
                            "app.kubernetes.io/instance": "flotilla",
                        }
                    }
                }
            ],
            "ports": [{"port": 15672, "protocol": "TCP"}],
        }
    ]
    opened = [
        name
        for name, policy in policies.items()
        for rule in policy["spec"].get("ingress", [])
        if {"port": 15672, "protocol": "TCP"} in rule.get("ports", [])
    ]
    assert opened == ["flotilla-rabbitmq-management-ingress"]
    redis_only = render("defaults")
    for autoscaler in of_kind(redis_only, "WorkerAutoscaler").values():
        assert "managementUrl" not in autoscaler["spec"]["broker"]


def test_the_chart_ships_the_operators_crd() -> None:
    crds = of_kind(render("defaults"), "CustomResourceDefinition")
    shipped = crds["workerautoscalers.flotilla.dev"]
    assert shipped == yaml.safe_load(CHART_CRD_PATH.read_text())


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    """The skipped checks are listed with their reasons in charts/flotilla/.checkov.yaml."""
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(yaml.safe_dump_all(render("defaults")))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "checkov"), "--quiet", "--compact",
            "--framework", "kubernetes",
            "--config-file", str(CHART / ".checkov.yaml"),
            "--file", str(manifests), "--output", "json",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['check_name']} ({check['resource']})"
        for each in reports
        for check in each.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    assert sum(each["summary"]["passed"] for each in reports) > 100


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_edges_admin_port_is_never_public(value_set: str) -> None:
    """/metrics and the detailed /readyz listen on a container port of their own that
    neither the Service, the Ingress nor (without networkPolicies.adminFrom) any
    NetworkPolicy admits."""
    docs = render(value_set)
    (edge,) = [d for n, d in of_kind(docs, "Deployment").items() if n.endswith("-edge")]
    (container,) = edge["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ports["admin"] == int(env["FLOTILLA_EDGE_ADMIN_PORT"]) != ports["http"]
    services = [d for n, d in of_kind(docs, "Service").items() if n.endswith("-edge")]
    assert [p["targetPort"] for s in services for p in s["spec"]["ports"]] == ["http"]
    for ingress in of_kind(docs, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            assert {p["backend"]["service"]["port"]["name"] for p in rule["http"]["paths"]} == {
                "http"
            }
    # NOTE: the peers networkPolicies.adminFrom names (namespaceSelectors: Prometheus) may
    # reach it; nothing else may, the chart's own pods included
    admitted = {
        port["port"]
        for policy in of_kind(docs, "NetworkPolicy").values()
        for rule in policy["spec"].get("ingress", [])
        if not any("namespaceSelector" in peer for peer in rule.get("from", []))
        for port in rule.get("ports", [])
    }
    assert ports["admin"] not in admitted


def test_only_the_collector_holds_the_consoles_ingest_token() -> None:
    docs = render("defaults")
    deployments = of_kind(docs, "Deployment")
    console = next(d for n, d in deployments.items() if n.endswith("-console"))
    collector = next(d for n, d in deployments.items() if n.endswith("-otel-collector"))

    def token_ref(deployment: dict[str, Any], variable: str) -> Any:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (entry,) = [e for e in container["env"] if e["name"] == variable]
        return entry["valueFrom"]["secretKeyRef"]

    assert token_ref(console, "FLOTILLA_CONSOLE_INGEST_TOKEN") == token_ref(
        collector, "CONSOLE_INGEST_TOKEN"
    )
    config = next(d for n, d in of_kind(docs, "ConfigMap").items() if "collector" in n)
    assert "Bearer ${env:CONSOLE_INGEST_TOKEN}" in config["data"]["config.yaml"]


def test_without_a_collector_spans_go_to_the_console_with_its_token() -> None:
    """No collector and no tracing.endpoint: every traced container exports to the release's
    console with the console-ingest token (which the console demands), and may reach it."""
    docs = render("containers")
    token = of_kind(docs, "Secret")["flotilla-console-ingest"]
    assert token
    traced = 0
    for name, workload in {**of_kind(docs, "Deployment")}.items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            entries = {e["name"]: e for e in container.get("env") or []}
            if entries.get("OTEL_SDK_DISABLED", {}).get("value") == "true":
                continue
            if "OTEL_EXPORTER_OTLP_ENDPOINT" not in entries:
                continue
            traced += 1
            assert entries["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://flotilla-console:8090"
            ref = entries["CONSOLE_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "flotilla-console-ingest", "key": "token"}, name
            names = list(entries)  # $(VAR) expands only a variable defined before it
            assert names.index("CONSOLE_INGEST_TOKEN") < names.index("OTEL_EXPORTER_OTLP_HEADERS")
            headers = entries["OTEL_EXPORTER_OTLP_HEADERS"]["value"]
            assert headers == "Authorization=Bearer%20$(CONSOLE_INGEST_TOKEN)"
    assert traced == 7  # edge, three APIs, two workers, the operator
    egress = of_kind(docs, "NetworkPolicy")["flotilla-orders-worker-egress"]["spec"]["egress"]
    peers = [rule["to"][0]["podSelector"]["matchLabels"] for rule in egress if "to" in rule]
    assert {"app.kubernetes.io/name": "console", "app.kubernetes.io/instance": "flotilla"} in peers
