"""The processes of the local platform, built from the component catalogue: commands,
settings and readiness, in start order.

The CLI never imports a service: it knows them by the catalogue's commands and settings
variables (docs/contracts.md), exactly as the chart's Deployments do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from flotilla.contracts.catalogue import CATALOGUE, Catalogue, Component, HttpProbe, Kind
from flotilla.contracts.scopes import OPERATOR_SCOPES

from ._broker import BrokerChoice, free_port
from ._keys import ensure_api_key
from ._process_spec import ProcessSpec
from ._settings import CliSettings


def _http_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class HttpReady:
    """A readiness check: ``GET url`` answers 200 (a component's readiness probe, locally)."""

    url: str

    def __call__(self) -> bool:
        return _http_ready(self.url)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


#: the kinds ``flotilla up`` runs (the operator's place is taken by the local autoscaler)
LOCAL_KINDS: tuple[Kind, ...] = ("console", "api", "worker", "edge")


def _port_field(listener: str) -> str:
    """The ``flotilla up`` setting that would move a listener: orders-api → ``orders_port``,
    ``edge admin`` → ``edge_admin_port``, the mail sink → ``smtp_port``."""
    if listener == "mail-sink":
        return "smtp_port"
    return listener.removesuffix("-api").replace(" ", "_").replace("-", "_") + "_port"


def port_option(listener: str) -> str | None:
    """The ``flotilla up`` option that moves a listener, if it has one (a component added to
    the catalogue runs on its catalogue port)."""
    field = _port_field(listener)
    return f"--{field.replace('_', '-')}" if field in CliSettings.model_fields else None


def local_ports(settings: CliSettings, catalogue: Catalogue = CATALOGUE) -> dict[str, int]:
    """Where each local listener is: every component's HTTP port (``<name> admin`` for an
    admin listener) and the mail sink's, the catalogue's unless a ``--<name>-port`` moves it."""
    ports: dict[str, int] = {}
    for c in catalogue.of_kind(*LOCAL_KINDS):
        if c.port is not None:
            ports[c.name] = getattr(settings, _port_field(c.name), c.port)
        if c.admin_port is not None:
            admin = f"{c.name} admin"
            ports[admin] = getattr(settings, _port_field(admin), c.admin_port)
    ports["mail-sink"] = settings.smtp_port
    return ports


def start_order(components: Iterable[Component]) -> list[Component]:
    """The console first (everyone sends it spans), then each component after those it calls."""
    pending = list(components)
    ordered = [c for c in pending if c.kind == "console"]
    pending = [c for c in pending if c.kind != "console"]
    while pending:
        names = {c.name for c in pending}
        ready = [c for c in pending if not names.intersection(c.calls) - {c.name}]
        if not ready:
            raise ValueError(f"the calls between {sorted(names)} go round in a circle")
        ordered += ready
        pending = [c for c in pending if c not in ready]
    return ordered


def platform_specs(
    settings: CliSettings, broker: BrokerChoice, api_key: str, catalogue: Catalogue = CATALOGUE
) -> list[ProcessSpec]:
    """Every process of the local platform, in start order (after the broker), from the
    component catalogue.

    Args:
        settings: ports, host and the state folder (databases and mail go under it).
        broker: the broker every process uses (its URL may carry ``?namespace=``).
        api_key: the local API key; only its sha256 reaches the edge.
        catalogue: the components to run (``flotilla.contracts.catalogue``).

    Returns:
        one migration per database, then the console, the mail sink and each component after
        those it calls; a worker is a template (``queue`` set: run as a pool).
    """
    var = settings.var_dir.resolve()
    host, py = settings.host, sys.executable
    ports = local_ports(settings, catalogue)

    def url(name: str) -> str:
        return f"http://{host}:{ports[name]}"

    def database_url(database: str) -> str:
        template = settings.database_url_template
        return (
            template.replace("{service}", database)
            if template
            else f"sqlite:///{var}/{database}.db"
        )

    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url("console"),
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_EXPORTER": "otlp",
        # every process's log records go to the console too, beside their spans
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        # NOTE: scraped, not pushed: locally nothing receives OTLP metrics
        "OTEL_METRICS_EXPORTER": "prometheus",
    }
    choices = _local_choices(settings, broker, api_key, ports)

    def env_of(c: Component) -> dict[str, str]:
        """What the catalogue says the component needs, placed on this machine."""
        env: dict[str, str] = {}
        if c.port is not None:
            env |= {c.env_name("host"): host, c.env_name("port"): str(ports[c.name])}
        if c.admin_port is not None:
            env |= {c.env_name("admin_host"): host}
            env[c.env_name("admin_port")] = str(ports[f"{c.name} admin"])
        if c.database:
            env[c.env_name("database_url")] = database_url(c.database)
        if c.broker:
            env[c.env_name("broker_url")] = broker.url
        env |= {c.env_name(f): url(peer) for f, peer in c.urls.items()}
        env |= {c.env_name(f): json.dumps({n: url(n) for n in ns}) for f, ns in c.url_maps.items()}
        if not c.traced:
            # NOTE: the console must not trace itself into itself (a feedback loop)
            return env | {"OTEL_SDK_DISABLED": "true"}
        env |= traced | {"OTEL_SERVICE_NAME": c.name}
        if c.metrics and c.admin_port is None:
            # a free port for /metrics (a pool gives each replica its own)
            prefix = f"FLOTILLA_{c.settings_prefix}_METRICS"
            env |= {f"{prefix}_HOST": host, f"{prefix}_PORT": str(free_port(host))}
        return env

    def ready_check(c: Component) -> HttpReady | None:
        probe = c.probes.readiness if c.probes else None
        if c.port is None or not isinstance(probe, HttpProbe):
            return None  # a worker is ready when its pool has it; it serves no HTTP
        return HttpReady(f"{url(c.name)}{probe.path}")

    components = start_order(catalogue.of_kind(*LOCAL_KINDS))
    if several := [c.name for c in components if len(c.consumes) > 1]:
        # NOTE: the operator scales on several queues; a local pool reads one queue's depth
        raise ValueError(f"flotilla up scales a worker pool on one queue: {several} consume more")
    migrations = {c.database: c for c in components if c.migrate and c.database}
    specs = [
        ProcessSpec(
            f"{c.member}-migrate",
            c.migrate_argv(py),
            {c.env_name("database_url"): database_url(database)},
            oneshot=True,
        )
        for database, c in sorted(migrations.items())
    ]
    sink = ProcessSpec(
        "mail-sink",
        [py, "-m", "flotilla.cli.mailsink", "--host", host, "--port", str(ports["mail-sink"]),
         "--dir", str(var / "mail")],
        ready=lambda: _port_open(host, ports["mail-sink"]),
    )  # fmt: skip
    for c in components:
        spec = ProcessSpec(
            c.name,
            c.argv(py),
            env_of(c) | choices.get(c.name, {}),
            ready=ready_check(c),
            queue=c.consumes[0] if c.consumes else None,
        )
        specs.append(spec)
        if c.kind == "console":
            specs.append(sink)
    # NOTE: every process's libraries speak at WARNING unless --verbose (flotilla.core's
    # configure_logging reads it): the start shows each process and the banner, not their
    # Alembic plugins and uvicorn's lines
    libraries = {
        "FLOTILLA_LIBRARY_LOG_LEVEL": "INFO" if settings.verbose else "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    return [dataclasses.replace(spec, env={**libraries, **spec.env}) for spec in specs]


def _local_choices(
    settings: CliSettings, broker: BrokerChoice, api_key: str, ports: dict[str, int]
) -> dict[str, dict[str, str]]:
    """What only this machine decides for a component: where its files go, the local keys,
    the demo's slower payments, the local mail sink. Everything else comes from the catalogue
    and, below it, the component's own settings defaults; a component's own variable in
    ``flotilla up``'s environment (``FLOTILLA_ORDERS_REDRIVE_AFTER_MS``) reaches it as it is."""
    var, host = settings.var_dir.resolve(), settings.host
    key_hash = hashlib.sha256(api_key.encode()).hexdigest()
    # NOTE: the operator key is made here (not passed in) so that specs_for keeps its shape
    _, operator_key = ensure_api_key(settings.var_dir, "operator-key")
    operator_hash = hashlib.sha256(operator_key.encode()).hexdigest()
    return {
        "console": {
            "FLOTILLA_CONSOLE_DATABASE_PATH": str(var / "console.db"),
            "FLOTILLA_CONSOLE_PLATFORM_STATUS": str(var / "local" / "status.json"),
        },
        "payments-api": {"FLOTILLA_PAYMENTS_LATENCY_MS": str(settings.payment_latency_ms)},
        "notifications-worker": {
            "FLOTILLA_NOTIFICATIONS_SMTP_HOST": host,
            "FLOTILLA_NOTIFICATIONS_SMTP_PORT": str(ports["mail-sink"]),
        },
        "edge": {
            # the customer scopes (the default) for the local key; the operator's own
            "FLOTILLA_EDGE_API_KEYS": (
                f"local:{key_hash},operator:{operator_hash}:{' '.join(OPERATOR_SCOPES)}"
            ),
            # NOTE: locally a developer's client may continue its own trace
            "FLOTILLA_EDGE_TRUST_TRACE_CONTEXT": "true",
            "FLOTILLA_EDGE_REDIS_URL": _without_query(broker.url),
        },
    }
