"""The platform's components, written once: what each one is, how it starts, where it listens,
what it consumes and produces, what it calls, and the defaults its settings class takes from here.

Everything that needs the platform's shape reads this module and nothing else:

- each service's settings class takes its port, its concurrency and its peers' addresses as
  defaults from here (``flotilla.orders`` listens on ``component("orders-api").port``);
- ``flotilla up`` builds its processes from it (``flotilla.cli._processes``);
- the chart reads ``charts/flotilla/catalogue.yaml``, which ``make catalogue`` writes from
  :func:`document` (a test fails while the file is stale), for its Deployments, Services,
  NetworkPolicies, WorkerAutoscalers and connection budget;
- ``docs/contracts.md``'s process and queue tables are written from it the same way.

Adding a component is one :class:`Component` here plus its package: docs/extending.md.
Standard library only: the CLI, the chart's generator and every service import it.
"""

from __future__ import annotations

from .components import (
    HTTP_PROBES,
    LOCAL_HOST,
    WORKER_PROBES,
    Catalogue,
    Component,
    Concurrency,
    Heartbeat,
    HttpProbe,
    Infrastructure,
    Kind,
    Probe,
    Probes,
    chart_file,
    document,
)

__all__ = [
    "CATALOGUE",
    "HTTP_PROBES",
    "LOCAL_HOST",
    "NOTIFICATIONS_QUEUE",
    "ORDERS_QUEUE",
    "WORKER_PROBES",
    "Catalogue",
    "Component",
    "Concurrency",
    "Heartbeat",
    "HttpProbe",
    "Infrastructure",
    "Kind",
    "Probe",
    "Probes",
    "chart_file",
    "component",
    "concurrency",
    "document",
    "local_url",
    "local_url_map",
    "port",
]

#: the queues between components (the messages name theirs from here)
ORDERS_QUEUE = "orders"
NOTIFICATIONS_QUEUE = "notifications"


CATALOGUE = Catalogue(
    components=(
        Component(
            "console",
            kind="console",
            member="console",
            command=("api",),
            settings_prefix="CONSOLE",
            description=(
                "FastAPI: receives every process's spans (OTLP/HTTP); pages for traces, a trace's"
                " waterfall, the pools and service health"
            ),
            port=8090,
            public=True,
            traced=False,  # it must not trace itself into itself
            metrics=False,
            # it shows each service's /readyz
            calls=("edge", "orders-api", "inventory-api", "payments-api"),
            url_maps={"services": ("edge", "orders-api", "inventory-api", "payments-api")},
            probes=HTTP_PROBES,
        ),
        Component(
            "inventory-api",
            kind="api",
            member="inventory",
            command=("api",),
            settings_prefix="INVENTORY",
            description="FastAPI: products and stock reservations (reserve, commit, release)",
            port=8002,
            database="inventory",
            migrate=True,
            concurrency=Concurrency("request_threads", 8),
            probes=HTTP_PROBES,
        ),
        Component(
            "payments-api",
            kind="api",
            member="payments",
            command=("api",),
            settings_prefix="PAYMENTS",
            description=(
                "FastAPI: the stand-in payment provider: one charge per `Idempotency-Key`, faults"
                " on demand (`PUT /faults`)"
            ),
            port=8003,
            database="payments",
            migrate=True,
            concurrency=Concurrency("request_threads", 8),
            probes=HTTP_PROBES,
        ),
        Component(
            "orders-api",
            kind="api",
            member="orders",
            command=("api",),
            settings_prefix="ORDERS",
            description=(
                "FastAPI: accepts orders, reserves stock, stores order + outbox in one transaction"
            ),
            port=8001,
            database="orders",
            migrate=True,
            broker=True,
            produces=(ORDERS_QUEUE,),
            calls=("inventory-api",),
            urls={"inventory_url": "inventory-api", "payments_url": "payments-api"},
            concurrency=Concurrency("request_threads", 8),
            probes=HTTP_PROBES,
        ),
        Component(
            "orders-worker",
            kind="worker",
            member="orders",
            command=("worker",),
            settings_prefix="ORDERS",
            description=(
                "Dramatiq: claims and fulfils orders (charge once, commit stock), enqueues "
                "confirmations"
            ),
            database="orders",
            migrate=True,
            broker=True,
            consumes=(ORDERS_QUEUE,),
            produces=(NOTIFICATIONS_QUEUE,),
            calls=("inventory-api", "payments-api"),
            urls={"inventory_url": "inventory-api", "payments_url": "payments-api"},
            concurrency=Concurrency("worker_threads", 8),
            probes=WORKER_PROBES,
            # drain: fulfil_order's and mark_order_failed's 30 s time limit + 5 s
            grace_period_s=45,
        ),
        Component(
            "notifications-worker",
            kind="worker",
            member="notifications",
            command=("worker",),
            settings_prefix="NOTIFICATIONS",
            description="Dramatiq: mails each order's confirmation once (SMTP)",
            broker=True,
            consumes=(NOTIFICATIONS_QUEUE,),
            calls=("redis", "smtp"),
            concurrency=Concurrency("worker_threads", 4),
            probes=WORKER_PROBES,
            # drain: send_order_confirmation's 60 s time limit + 5 s
            grace_period_s=75,
        ),
        Component(
            "edge",
            kind="edge",
            member="edge",
            command=("api",),
            settings_prefix="EDGE",
            description=(
                "Falcon: the trust boundary: path checks, authentication (API keys and JWTs with "
                "scopes), rate limits, one route table, retries, circuit breaking; starts every "
                "trace"
            ),
            port=8080,
            admin_port=9080,
            public=True,
            calls=("orders-api", "inventory-api", "redis"),
            url_maps={"upstreams": ("orders-api", "inventory-api")},
            probes=HTTP_PROBES,
        ),
        Component(
            "operator",
            kind="operator",
            member="operator",
            command=(),
            settings_prefix="OPERATOR",
            description=(
                "kopf: scales each worker Deployment on its queues' depth (WorkerAutoscaler); in "
                "the cluster only (`flotilla up` runs the same policy itself)"
            ),
            port=8080,  # kopf's liveness endpoint
            admin_port=9090,  # its /metrics
            calls=("broker",),  # the WorkerAutoscalers name it (not a setting)
        ),
    ),
    infrastructure=(
        Infrastructure("redis", 6379, "redis", "broker (or RabbitMQ), rate limits, mail ledger"),
        Infrastructure("rabbitmq", 5672, "amqp", "the broker when broker.kind is rabbitmq"),
        Infrastructure("postgresql", 5432, "postgresql", "orders, inventory, payments databases"),
        Infrastructure("mail-sink", 1025, "smtp", "the demo SMTP sink (mails filed on disk)"),
        Infrastructure("otel-collector", 4318, "otlp-http", "spans, logs, metrics to Jaeger"),
        Infrastructure("jaeger", 4318, "otlp-http", "trace storage and UI (16686)"),
    ),
)


def component(name: str) -> Component:
    """One component of the platform's catalogue."""
    return CATALOGUE.component(name)


def port(name: str) -> int:
    """The default port of a component or of infrastructure."""
    return CATALOGUE.port(name)


def local_url(name: str) -> str:
    """A component's base URL on this machine: a settings default."""
    return CATALOGUE.local_url(name)


def local_url_map(field_of: str, component_name: str) -> dict[str, str]:
    """The default of a component's URL-map field (e.g. the edge's ``upstreams``)."""
    return CATALOGUE.local_url_map(CATALOGUE.component(component_name).url_maps[field_of])


def concurrency(name: str) -> int:
    """The default of a component's concurrency field."""
    c = CATALOGUE.component(name).concurrency
    if c is None:
        raise KeyError(f"{name} names no concurrency")
    return c.default
