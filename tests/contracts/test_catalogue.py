"""The component catalogue is the one definition of the platform's shape: each settings class,
``flotilla up``'s processes and the chart's rendered objects agree with it, the files written
from it are current, and docs/extending.md's steps add a component everywhere at once.

Real ``helm`` renders the chart; ``flotilla up``'s process list is built as ``make run`` builds
it (its readiness checks are asked against real HTTP servers).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from scripts import catalogue as generator

from flotilla.cli import CliSettings, platform_specs
from flotilla.cli._broker import BrokerChoice
from flotilla.cli._process_spec import ProcessSpec
from flotilla.cli._processes import HttpReady, local_ports, port_option
from flotilla.contracts import FulfilOrder, OrderConfirmation, catalogue
from flotilla.contracts.catalogue import (
    CATALOGUE,
    Catalogue,
    Component,
    Heartbeat,
    HttpProbe,
)
from flotilla.core import pool_size_for
from tests.charts.test_chart import helm, of_kind, render
from tests.charts.test_connection_budget import template
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = CATALOGUE.of_kind("edge", "api", "worker", "console")
BROKER = BrokerChoice("redis://127.0.0.1:6379/0", "existing")


def settings_class(c: Component) -> type[BaseSettings]:
    """The settings class of a component: the one its package exports for its prefix."""
    modules = [c.module] + (["flotilla.operator.kube"] if c.kind == "operator" else [])
    prefix = f"FLOTILLA_{c.settings_prefix}_"
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.model_config.get("env_prefix") == prefix
            ):
                return value
    raise AssertionError(f"{c.name}: {c.module} exports no settings class for {prefix}*")


def default_of(cls: type[BaseSettings], field: str) -> Any:
    info = cls.model_fields[field]
    return info.get_default(call_default_factory=True)


def local_specs(tmp_path: Path, catalogue_: Catalogue = CATALOGUE) -> dict[str, ProcessSpec]:
    settings = CliSettings(var_dir=tmp_path / "var")
    return {s.name: s for s in platform_specs(settings, BROKER, "key", catalogue_)}


# --- the catalogue itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"calls": ("nowhere-api",)}, "calls nowhere-api: not in the catalogue"),
        ({"name": "orders-api"}, "a name is used twice"),
        ({"database": "extra", "concurrency": None}, "names no concurrency"),
        ({"kind": "worker", "consumes": ()}, "consumes no queue"),
        ({"urls": {"x_url": "orders-worker"}}, "orders-worker, which serves no HTTP"),
    ],
)
def test_a_catalogue_that_contradicts_itself_is_refused_with_the_reason(
    change: dict[str, Any], refusal: str
) -> None:
    sample = Component("sample-api", kind="api", member="sample", command=("api",),
                       settings_prefix="SAMPLE", description="-", port=9999)  # fmt: skip
    with pytest.raises(ValueError, match=refusal):
        CATALOGUE.with_component(dataclasses.replace(sample, **change))


def test_the_files_written_from_the_catalogue_are_current() -> None:
    """charts/flotilla/catalogue.yaml and docs/contracts.md's tables (``make catalogue``)."""
    assert generator.stale() == [], "run `make catalogue` and commit what it writes"


def test_the_ports_only_the_platform_uses_are_written_nowhere_but_in_the_catalogue() -> None:
    """The ports of the internal components (orders-api's 8001 …) appear in no source,
    chart, guide or script: only in the catalogue, in tests and in generated tables."""
    public = {c.port for c in CATALOGUE.components if c.public}
    internal = [c.port for c in CATALOGUE.components if c.port and c.port not in public]
    assert internal, "the catalogue has internal components"
    generated = re.compile(r"<!-- catalogue:(\w+) -->.*?<!-- /catalogue:\1 -->", re.DOTALL)
    allowed = {
        Path("services/contracts/src/flotilla/contracts/catalogue.py"),
        generator.CHART_FILE,
        Path("uv.lock"),
    }
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        path = Path(name)
        if path.parts[0] == "tests" or path in allowed or not (ROOT / path).is_file():
            continue
        try:
            text = generated.sub("", (ROOT / path).read_text())
        except UnicodeDecodeError:
            continue
        found += [f"{path}: {port}" for port in internal if re.search(rf"\b{port}\b", text)]
    assert found == [], "take the port from flotilla.contracts.catalogue"


# --- each settings class -----------------------------------------------------------------


@pytest.mark.parametrize("c", CATALOGUE.components, ids=lambda c: c.name)
def test_each_settings_class_takes_its_defaults_from_the_catalogue(c: Component) -> None:
    cls = settings_class(c)
    if c.kind != "operator":
        if c.port is not None:
            assert default_of(cls, "port") == c.port
        if c.admin_port is not None:
            assert default_of(cls, "admin_port") == c.admin_port
    if c.concurrency:
        assert default_of(cls, c.concurrency.field) == c.concurrency.default
    for field, peer in c.urls.items():
        assert default_of(cls, field) == CATALOGUE.local_url(peer), field
    for field, peers in c.url_maps.items():
        # the console shows no service's health unless told which (flotilla up, the chart)
        expected = {} if c.kind == "console" else CATALOGUE.local_url_map(peers)
        assert {k: str(v).rstrip("/") for k, v in default_of(cls, field).items()} == expected
    for field in ("database_url", "broker_url"):
        assert (field in cls.model_fields) == bool(c.database if field == "database_url"
                                                   else c.broker), (c.name, field)  # fmt: skip


def test_the_pool_the_chart_counts_is_the_pool_each_process_opens() -> None:
    for c in CATALOGUE.components:
        if c.concurrency:
            threads = c.concurrency.default
            assert threads + c.pool_extra == pool_size_for(threads, serves_http=bool(c.port))


def test_the_queues_are_the_ones_the_code_declares_and_the_messages_name() -> None:
    from dramatiq.brokers.stub import StubBroker

    from flotilla.notifications import NotificationsSettings
    from flotilla.notifications import declare_actors as declare_notifications
    from flotilla.orders import OrdersSettings
    from flotilla.orders import declare_actors as declare_orders

    declared = {}
    for name, declare in (
        ("orders-worker", lambda b: declare_orders(b, None, OrdersSettings())),  # type: ignore[arg-type]
        ("notifications-worker", lambda b: declare_notifications(b, NotificationsSettings())),
    ):
        broker = StubBroker()
        declare(broker)
        declared[name] = {broker.get_actor(a).queue_name for a in broker.get_declared_actors()}
    for c in CATALOGUE.of_kind("worker"):
        assert declared[c.name] == set(c.consumes), c.name
    queues = set().union(*declared.values())
    producers = {q: {c.name for c in CATALOGUE.components if q in c.produces} for q in queues}
    assert producers[FulfilOrder.queue] == {"orders-api"}
    assert producers[OrderConfirmation.queue] == {"orders-worker"}
    assert OrderConfirmation.queue in CATALOGUE.component("notifications-worker").consumes


# --- flotilla up ----------------------------------------------------------------------


def test_flotilla_up_runs_every_component_as_the_catalogue_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process: the catalogue's command, its settings variables (nothing its class does
    not read), which its class loads, at the catalogue's port, with its peers' addresses."""
    specs = local_specs(tmp_path)
    for c in DEPLOYED:
        spec = specs[c.name]
        with monkeypatch.context() as env:
            for key, value in spec.env.items():
                env.setenv(key, value)
            loaded = settings_class(c)()
        if c.port:
            assert loaded.port == c.port  # type: ignore[attr-defined]
        assert spec.argv == [sys.executable, "-m", c.module, *c.command]
        fields = {
            f"FLOTILLA_{c.settings_prefix}_{f.upper()}" for f in settings_class(c).model_fields
        }
        ours = {k for k in spec.env if k.startswith(f"FLOTILLA_{c.settings_prefix}_")}
        assert ours <= fields, f"{c.name}: {sorted(ours - fields)} are not settings"
        if c.port:
            assert spec.env[c.env_name("port")] == str(c.port)
        if c.admin_port:
            assert spec.env[c.env_name("admin_port")] == str(c.admin_port)
        for field, peer in c.urls.items():
            assert spec.env[c.env_name(field)] == CATALOGUE.local_url(peer)
        for field, peers in c.url_maps.items():
            assert json.loads(spec.env[c.env_name(field)]) == CATALOGUE.local_url_map(peers)
        assert (c.env_name("database_url") in spec.env) == bool(c.database), c.name
        assert (c.env_name("broker_url") in spec.env) == c.broker, c.name
        assert spec.queue == (c.consumes[0] if c.consumes else None)
        if c.port and c.probes and isinstance(c.probes.readiness, HttpProbe):
            assert isinstance(spec.ready, HttpReady)
            assert spec.ready.url == CATALOGUE.local_url(c.name) + c.probes.readiness.path
        else:
            assert spec.ready is None
    for c in (c for c in DEPLOYED if c.migrate):
        (migration,) = [s for s in specs.values() if s.oneshot and any(
            v.endswith(f"/{c.database}.db") for v in s.env.values())]  # fmt: skip
        assert migration.argv == c.migrate_argv(sys.executable)


def test_flotilla_up_refuses_a_worker_of_several_queues_it_could_not_scale(
    tmp_path: Path,
) -> None:
    worker = CATALOGUE.component("notifications-worker")
    several = dataclasses.replace(worker, name="both-worker", consumes=("orders", "notifications"))
    with pytest.raises(ValueError, match=r"one queue: \['both-worker'\]"):
        local_specs(tmp_path, CATALOGUE.with_component(several))


def test_each_listener_of_the_platform_can_be_moved_by_the_option_flotilla_up_names() -> None:
    """A port in use is refused naming the option that moves it: that option exists for every
    built-in listener, at the catalogue's port; an added component has none (its port is the
    catalogue's, and the refusal says so)."""
    from flotilla.cli.__main__ import up

    options = {p.opts[0]: p for p in up.params}
    for listener, port in local_ports(CliSettings()).items():
        option = port_option(listener)
        assert option in options, listener
        assert f"(default {port})" in (options[option].help or ""), listener
    assert port_option("recommendations-api") is None


def test_flotilla_up_starts_each_component_after_those_it_calls(tmp_path: Path) -> None:
    order = list(local_specs(tmp_path))
    for c in DEPLOYED:
        for callee in c.calls:
            if callee in order and c.kind != "console":
                assert order.index(callee) < order.index(c.name), (callee, c.name)


# --- the chart ------------------------------------------------------------------------


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def in_cluster(name: str) -> str:
    """A component's base URL inside the release ``flotilla``."""
    return f"http://flotilla-{name}:{CATALOGUE.port(name)}"


def _probe_path(probe: dict[str, Any]) -> HttpProbe | Heartbeat:
    if "httpGet" in probe:
        return HttpProbe(probe["httpGet"]["path"])
    return Heartbeat(int(probe["exec"]["command"][-1]))


def test_the_chart_deploys_every_component_as_the_catalogue_says() -> None:
    docs = render("defaults")
    deployments, services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    autoscalers = of_kind(docs, "WorkerAutoscaler")
    for c in DEPLOYED:
        name = f"flotilla-{c.name}"
        pod = deployments[name]["spec"]["template"]["spec"]
        container = _container(deployments[name])
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["command"] == c.argv()
        assert pod["terminationGracePeriodSeconds"] == c.grace_period_s
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if c.port:
            assert ports["http"] == c.port and env[c.env_name("port")] == str(c.port)
            assert services[name]["spec"]["ports"][0]["port"] == c.port
        else:
            assert name not in services
        if c.admin_port:
            assert ports["admin"] == c.admin_port
        if c.admin_port:
            assert env[c.env_name("admin_port")] == str(c.admin_port)
        assert c.probes is not None
        assert _probe_path(container["readinessProbe"]) == c.probes.readiness
        assert _probe_path(container["livenessProbe"]) == c.probes.liveness
        if c.probes.startup:
            assert _probe_path(container["startupProbe"]) == c.probes.startup
        else:
            assert "startupProbe" not in container
        for field, peer in c.urls.items():
            assert env[c.env_name(field)] == in_cluster(peer)
        for field, peers in c.url_maps.items():
            assert json.loads(env[c.env_name(field)]) == {p: in_cluster(p) for p in peers}
        assert (c.env_name("database_url") in env) == bool(c.database), c.name
        assert (c.env_name("broker_url") in env) == c.broker, c.name
        if c.kind == "worker":
            assert autoscalers[name]["spec"]["queues"] == list(c.consumes)
        if c.migrate:
            (init,) = pod["initContainers"]
            assert init["command"] == c.migrate_argv()


def test_a_release_naming_a_component_the_catalogue_lacks_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    """A typo in values (``orders-wroker``) would otherwise be ignored silently."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"components": {"orders-wroker": {"replicas": 3}}}))
    refused = template("-f", str(values))
    assert refused.returncode != 0
    assert "components.orders-wroker: no such component in the catalogue" in refused.stderr
    assert "docs/extending.md" in refused.stderr


def test_the_packaged_chart_carries_its_catalogue(tmp_path: Path) -> None:
    """What `helm package` ships (and a user installs from a repository) renders the same
    components: the catalogue is a chart file, not one .helmignore leaves out."""
    packaged = subprocess.run(
        [helm(), "package", str(ROOT / "charts" / "flotilla"), "-d", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = tmp_path.glob("flotilla-*.tgz")
    rendered = template(chart=archive)
    assert rendered.returncode == 0, rendered.stderr
    docs = tuple(d for d in yaml.safe_load_all(rendered.stdout) if d)
    assert {f"flotilla-{c.name}" for c in DEPLOYED} <= set(of_kind(docs, "Deployment"))


def test_a_worker_can_run_at_fixed_replicas_without_an_autoscaler(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"components": {"notifications-worker": {
        "autoscaling": {"enabled": False}, "replicas": 3}}}))  # fmt: skip
    rendered = template("-f", str(values))
    assert rendered.returncode == 0, rendered.stderr
    docs = tuple(d for d in yaml.safe_load_all(rendered.stdout) if d)
    assert set(of_kind(docs, "WorkerAutoscaler")) == {"flotilla-orders-worker"}
    assert of_kind(docs, "Deployment")["flotilla-notifications-worker"]["spec"]["replicas"] == 3


# --- docs/extending.md, step by step -----------------------------------------------------


def extending_entry() -> Component:
    """The catalogue entry docs/extending.md shows, as written there."""
    text = (ROOT / "docs" / "extending.md").read_text()
    (block,) = re.findall(r"```python catalogue-entry\n(.*?)```", text, re.DOTALL)
    entry = eval(block, vars(catalogue))  # noqa: S307 - our own document's code block
    assert isinstance(entry, Component)
    return entry


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[int]:
    """A real HTTP server answering 200 on /readyz only: the new component, stood in for."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Ready)
    Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_component_added_as_the_guide_says_runs_locally_with_its_port_env_and_probe(
    tmp_path: Path, answering: int
) -> None:
    entry = extending_entry()
    assert entry.port == 8004 and entry.name == "recommendations-api"
    # NOTE: the guide's port, moved to a free one so that a real server can stand in for it
    added = CATALOGUE.with_component(dataclasses.replace(entry, port=answering))
    spec = local_specs(tmp_path, added)["recommendations-api"]
    assert spec.argv == [sys.executable, "-m", "flotilla.recommendations", "api"]
    assert spec.env["FLOTILLA_RECOMMENDATIONS_PORT"] == str(answering)
    assert spec.env["FLOTILLA_RECOMMENDATIONS_INVENTORY_URL"] == CATALOGUE.local_url(
        "inventory-api"
    )
    assert spec.env["OTEL_SERVICE_NAME"] == "recommendations-api"
    assert spec.env["FLOTILLA_RECOMMENDATIONS_METRICS_PORT"].isdigit()
    assert spec.ready is not None and spec.ready()  # GET /readyz on its port
    unready = CATALOGUE.with_component(
        dataclasses.replace(entry, port=answering, probes=dataclasses.replace(
            entry.probes, readiness=HttpProbe("/elsewhere")))  # type: ignore[arg-type]
    )  # fmt: skip
    probe = local_specs(tmp_path, unready)["recommendations-api"].ready
    assert probe is not None and not probe()


def test_a_component_added_as_the_guide_says_is_deployed_by_the_chart(tmp_path: Path) -> None:
    """Steps 2 and 3 on a copy of the chart and the docs: the entry, `make catalogue`'s
    writer, then `helm template`: Deployment, Service, env, probes and network policies."""
    entry = extending_entry()
    shutil.copytree(ROOT / "charts", tmp_path / "charts")
    (tmp_path / "docs").mkdir()
    for document in ("docs/contracts.md", "README.md"):
        shutil.copy(ROOT / document, tmp_path / document)
    written = generator.write(tmp_path, CATALOGUE.with_component(entry))
    assert set(written) == {generator.CHART_FILE, Path("docs/contracts.md"), Path("README.md")}
    assert "| recommendations-api | api |" in (tmp_path / "docs" / "contracts.md").read_text()
    assert "| recommendations-api | 8004 |" in (tmp_path / "README.md").read_text()
    rendered = template(chart=tmp_path / "charts" / "flotilla")
    assert rendered.returncode == 0, rendered.stderr
    docs = tuple(d for d in yaml.safe_load_all(rendered.stdout) if d)
    deployment = of_kind(docs, "Deployment")["flotilla-recommendations-api"]
    container = _container(deployment)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["command"] == ["python", "-m", "flotilla.recommendations", "api"]
    assert container["image"].endswith("/flotilla-recommendations:0.1.0")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8004, "metrics": 9464}  # fmt: skip
    assert env["FLOTILLA_RECOMMENDATIONS_PORT"] == "8004"
    assert env["FLOTILLA_RECOMMENDATIONS_HOST"] == "0.0.0.0"
    assert env["FLOTILLA_RECOMMENDATIONS_REQUEST_THREADS"] == "4"
    assert env["FLOTILLA_RECOMMENDATIONS_INVENTORY_URL"] == "http://flotilla-inventory-api:8002"
    assert env["OTEL_SERVICE_NAME"] == "recommendations-api"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert deployment["spec"]["replicas"] == 1  # componentDefaults
    service = of_kind(docs, "Service")["flotilla-recommendations-api"]
    assert service["spec"]["ports"][0]["port"] == 8004
    policies = of_kind(docs, "NetworkPolicy")
    egress = policies["flotilla-recommendations-api-egress"]["spec"]["egress"]
    to_inventory = [
        rule for rule in egress
        if rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "inventory-api"
    ]  # fmt: skip
    assert to_inventory and to_inventory[0]["ports"] == [{"port": 8002, "protocol": "TCP"}]
    (allowed,) = policies["flotilla-inventory-api-ingress"]["spec"]["ingress"]
    callers = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in allowed["from"]}
    assert "recommendations-api" in callers
    assert "flotilla-recommendations-api-ingress" not in policies  # nobody calls it yet
