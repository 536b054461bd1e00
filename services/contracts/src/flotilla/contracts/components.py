"""The shapes of the component catalogue (:mod:`flotilla.contracts.catalogue` holds the
entries): a component, its probes and concurrency, infrastructure, and the catalogue itself
with the checks that keep it consistent; :func:`document` is what the chart reads.

Standard library only (an import contract): the CLI, the chart's generator and every service
import it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Kind = Literal["edge", "api", "worker", "console", "operator"]
#: where a process listens and is reached locally (``flotilla up``, each settings default)
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class HttpProbe:
    """A probe that asks ``GET path`` on the component's HTTP port (200: passed)."""

    path: str


@dataclass(frozen=True)
class Heartbeat:
    """A probe that passes while the worker touched its heartbeat file in the last
    ``max_age_s`` seconds (``python -m flotilla.core.alive <max_age_s>``)."""

    max_age_s: int


Probe = HttpProbe | Heartbeat


@dataclass(frozen=True)
class Probes:
    """Kubernetes' three probes; locally ``flotilla up`` waits for ``readiness``."""

    readiness: Probe
    liveness: Probe
    startup: Probe | None = None


#: every HTTP component: alive is /healthz (never asks anyone), ready is /readyz
HTTP_PROBES = Probes(
    readiness=HttpProbe("/readyz"), liveness=HttpProbe("/healthz"), startup=HttpProbe("/healthz")
)
#: every worker: its consumer and worker threads touch a heartbeat file while they live
WORKER_PROBES = Probes(readiness=Heartbeat(30), liveness=Heartbeat(60))


@dataclass(frozen=True)
class Concurrency:
    """The settings field that sizes a process's threads, and its default. Each thread may
    hold one database connection (the chart's connection budget counts them)."""

    field: str
    default: int


@dataclass(frozen=True)
class Infrastructure:
    """Something the platform's components reach that is not one of them: a datastore, the
    mail server, the tracing pipeline. Locally at ``LOCAL_HOST:port``; the chart deploys it
    (or is given an external one)."""

    name: str
    port: int
    protocol: str
    description: str


@dataclass(frozen=True)
class Component:
    """One deployable of the platform.

    Attributes:
        name: the process, Deployment, Service and ``OTEL_SERVICE_NAME``.
        kind: edge, api, worker, console or operator.
        member: the workspace member: its package ``flotilla.<member>``, its image
            ``flotilla-<member>``.
        command: the arguments after ``python -m flotilla.<member>``.
        settings_prefix: its settings class reads ``FLOTILLA_<settings_prefix>_*``.
        description: one line for the docs.
        port: its HTTP port (``<PREFIX>_PORT``; ``None``: it serves no HTTP).
        admin_port: its admin listener (``/metrics``, detailed readiness), never public.
        public: clients from outside the platform may reach its port.
        traced: it exports spans (the console must not trace itself into itself).
        metrics: it serves ``/metrics`` (on the admin port if it has one, else on the
            metrics port every deployment gives it).
        database: the database it uses (``<PREFIX>_DATABASE_URL``).
        migrate: it brings its database's schema to head before it starts
            (``python -m flotilla.<member> migrate``).
        broker: it uses the message broker (``<PREFIX>_BROKER_URL``).
        consumes: the queues it consumes (a worker is scaled on their depth).
        produces: the queues it sends to.
        calls: the components and infrastructure it connects to (the network policies).
        urls: its settings fields that hold one component's base URL.
        url_maps: its settings fields that hold a JSON object of components' base URLs.
        concurrency: the field that sizes its threads (and database pool).
        probes: how it says it is alive and ready.
        grace_period_s: the seconds it gets to drain on SIGTERM (a worker: its longest actor
            time limit + 5 s, checked against the code, plus a margin).
    """

    name: str
    kind: Kind
    member: str
    command: tuple[str, ...]
    settings_prefix: str
    description: str
    port: int | None = None
    admin_port: int | None = None
    public: bool = False
    traced: bool = True
    metrics: bool = True
    database: str | None = None
    migrate: bool = False
    broker: bool = False
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    url_maps: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    concurrency: Concurrency | None = None
    probes: Probes | None = None
    grace_period_s: int = 30

    @property
    def module(self) -> str:
        return f"flotilla.{self.member}"

    def argv(self, python: str = "python") -> list[str]:
        """Its command line with ``python`` as the interpreter."""
        return [python, "-m", self.module, *self.command]

    def migrate_argv(self, python: str = "python") -> list[str]:
        """The command that brings its database's schema to head."""
        return [python, "-m", self.module, "migrate"]

    @property
    def peers(self) -> set[str]:
        """The components whose base URL its settings hold (``urls`` and ``url_maps``)."""
        return {*self.urls.values(), *(name for names in self.url_maps.values() for name in names)}

    def env_name(self, field_name: str) -> str:
        """The variable that sets one of its settings fields."""
        return f"FLOTILLA_{self.settings_prefix}_{field_name.upper()}"

    @property
    def pool_extra(self) -> int:
        """The database connections its pool holds beyond one per thread: its background
        thread, and an HTTP service's readiness check (``flotilla.core.pool_size_for``)."""
        return 2 if self.port is not None else 1

    def connects_to(self) -> tuple[str, ...]:
        """Everything it opens a connection to: its calls, its database and its broker."""
        extra = (("postgresql",) if self.database else ()) + (("broker",) if self.broker else ())
        return tuple(dict.fromkeys((*self.calls, *extra)))


@dataclass(frozen=True)
class Catalogue:
    """Every component and every piece of infrastructure, in start order."""

    components: tuple[Component, ...]
    infrastructure: tuple[Infrastructure, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.components] + [i.name for i in self.infrastructure]
        if len(set(names)) != len(names):
            raise ValueError(f"a name is used twice in the catalogue: {sorted(names)}")
        known = {*names, "broker", "smtp"}
        for c in self.components:
            if unknown := sorted({*c.calls, *c.peers} - known):
                raise ValueError(f"{c.name} calls {', '.join(unknown)}: not in the catalogue")
            for peer in c.peers:
                if self.component(peer).port is None:
                    raise ValueError(f"{c.name} holds the URL of {peer}, which serves no HTTP")
            if c.kind == "worker" and not c.consumes:
                raise ValueError(f"worker {c.name} consumes no queue")
            if c.migrate and not c.database:
                raise ValueError(f"{c.name} migrates but names no database")
            if c.database and not c.concurrency:
                raise ValueError(f"{c.name} uses a database but names no concurrency (its pool)")

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"no component {name!r} in the catalogue")

    def infra(self, name: str) -> Infrastructure:
        for i in self.infrastructure:
            if i.name == name:
                return i
        raise KeyError(f"no infrastructure {name!r} in the catalogue")

    def port(self, name: str) -> int:
        """The port of a component or of infrastructure."""
        if any(i.name == name for i in self.infrastructure):
            return self.infra(name).port
        port = self.component(name).port
        if port is None:
            raise KeyError(f"{name} serves no port")
        return port

    def local_url(self, name: str) -> str:
        """A component's base URL on this machine, at its default port."""
        return f"http://{LOCAL_HOST}:{self.port(name)}"

    def local_url_map(self, names: Iterable[str]) -> dict[str, str]:
        return {n: self.local_url(n) for n in names}

    def with_component(self, extra: Component) -> Catalogue:
        """This catalogue with one more component (last in start order)."""
        return dataclasses.replace(self, components=(*self.components, extra))

    def of_kind(self, *kinds: Kind) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.kind in kinds)


def _probe(probe: Probe | None) -> dict[str, Any] | None:
    if probe is None:
        return None
    if isinstance(probe, HttpProbe):
        return {"http": probe.path}
    return {"heartbeat": probe.max_age_s}


def document(catalogue: Catalogue) -> dict[str, Any]:
    """The catalogue as the chart reads it (``charts/flotilla/catalogue.yaml``): plain data,
    keys in the chart's own spelling."""
    components = []
    for c in catalogue.components:
        entry: dict[str, Any] = {
            "name": c.name,
            "kind": c.kind,
            "image": c.member,
            "command": c.argv(),
            "settingsPrefix": c.settings_prefix,
            "traced": c.traced,
            "metrics": c.metrics,
            "public": c.public,
            "talksTo": list(c.connects_to()),
            "gracePeriodSeconds": c.grace_period_s,
        }
        optional: dict[str, Any] = {
            "port": c.port,
            "adminPort": c.admin_port,
            "database": c.database,
            "migrate": c.migrate_argv() if c.migrate else None,
            "broker": c.broker or None,
            "consumes": list(c.consumes) or None,
            "produces": list(c.produces) or None,
            "urls": dict(c.urls) or None,
            "urlMaps": {k: list(v) for k, v in c.url_maps.items()} or None,
            "concurrency": (
                {"field": c.concurrency.field, "default": c.concurrency.default,
                 "extra": c.pool_extra}
                if c.concurrency else None
            ),
            "probes": (
                {k: v for k in ("startup", "readiness", "liveness")
                 if (v := _probe(getattr(c.probes, k))) is not None}
                if c.probes else None
            ),
        }  # fmt: skip
        entry.update({k: v for k, v in optional.items() if v is not None})
        components.append(entry)
    return {
        "components": components,
        "infrastructure": {i.name: {"port": i.port, "protocol": i.protocol}
                           for i in catalogue.infrastructure},
    }  # fmt: skip


def chart_file(catalogue: Catalogue) -> str:
    """``charts/flotilla/catalogue.yaml``: JSON, which YAML reads as it is."""
    header = (
        "# Written by `make catalogue` from flotilla.contracts.catalogue; do not edit.\n"
        "# The chart reads it (templates/_catalogue.tpl); tests/contracts checks it is current.\n"
    )
    return header + json.dumps(document(catalogue), indent=2) + "\n"
