"""The processes of the local platform: commands, settings and readiness, in start order.

The CLI never imports a service: it knows them by their commands and settings variables
(docs/contracts.md), exactly as a Kubernetes Deployment does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import sys
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._broker import BrokerChoice, free_port
from ._keys import ensure_api_key
from ._process_spec import ProcessSpec
from ._settings import CliSettings


def _http_ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def platform_specs(settings: CliSettings, broker: BrokerChoice, api_key: str) -> list[ProcessSpec]:
    """Every process of the local platform, in start order (after the broker).

    Args:
        settings: ports, host and the state folder (databases and mail go under it).
        broker: the broker every process uses (its URL may carry ``?namespace=``).
        api_key: the local API key; only its sha256 reaches the edge.

    Returns:
        migrations, console, inventory-api, payments-api (the stand-in provider), orders-api,
        the two worker templates (``queue``
        set: run as pools), the mail sink and the edge.
    """
    var = settings.var_dir.resolve()
    host, py = settings.host, sys.executable
    console_url = f"http://{host}:{settings.console_port}"
    orders_url = f"http://{host}:{settings.orders_port}"
    inventory_url = f"http://{host}:{settings.inventory_port}"
    payments_url = f"http://{host}:{settings.payments_port}"
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": console_url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_EXPORTER": "otlp",
        # every process's log records go to the console too, beside their spans
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        # NOTE: scraped, not pushed: locally nothing receives OTLP metrics
        "OTEL_METRICS_EXPORTER": "prometheus",
        "PYTHONUNBUFFERED": "1",
    }

    def metrics(component: str) -> dict[str, str]:
        """A free port for a process's /metrics (a pool gives each replica its own)."""
        prefix = f"FLOTILLA_{component}_METRICS"
        return {f"{prefix}_HOST": host, f"{prefix}_PORT": str(free_port(host))}

    def database_url(service: str) -> str:
        template = settings.database_url_template
        return (
            template.replace("{service}", service) if template else f"sqlite:///{var}/{service}.db"
        )

    inventory_env = {
        "FLOTILLA_INVENTORY_DATABASE_URL": database_url("inventory"),
        "FLOTILLA_INVENTORY_HOST": host,
        "FLOTILLA_INVENTORY_PORT": str(settings.inventory_port),
        "FLOTILLA_INVENTORY_RESERVATION_TTL_S": str(settings.reservation_ttl_s),
    }
    orders_env = {
        "FLOTILLA_ORDERS_DATABASE_URL": database_url("orders"),
        "FLOTILLA_ORDERS_BROKER_URL": broker.url,
        "FLOTILLA_ORDERS_INVENTORY_URL": inventory_url,
        "FLOTILLA_ORDERS_HOST": host,
        "FLOTILLA_ORDERS_PORT": str(settings.orders_port),
        "FLOTILLA_ORDERS_PAYMENTS_URL": payments_url,
        "FLOTILLA_ORDERS_REDRIVE_AFTER_MS": str(settings.redrive_after_ms),
    }
    payments_env = {
        "FLOTILLA_PAYMENTS_DATABASE_URL": database_url("payments"),
        "FLOTILLA_PAYMENTS_HOST": host,
        "FLOTILLA_PAYMENTS_PORT": str(settings.payments_port),
        "FLOTILLA_PAYMENTS_LATENCY_MS": str(settings.payment_latency_ms),
    }
    key_hash = hashlib.sha256(api_key.encode()).hexdigest()
    # NOTE: the operator key is made here (not passed in) so that specs_for keeps its shape
    _, operator_key = ensure_api_key(settings.var_dir, "operator-key")
    operator_hash = hashlib.sha256(operator_key.encode()).hexdigest()
    # NOTE: the edge's route table is its own (flotilla.edge ROUTE_TABLE); only where each
    # upstream listens is said here, as the chart says it.
    upstreams = {"orders-api": orders_url, "inventory-api": inventory_url}
    # NOTE: every process's libraries speak at WARNING unless --verbose (flotilla.core's
    # configure_logging reads it): the start shows each process and the banner, not their
    # Alembic plugins and uvicorn's lines
    libraries = {"FLOTILLA_LIBRARY_LOG_LEVEL": "INFO" if settings.verbose else "WARNING"}
    specs = [
        ProcessSpec(
            "inventory-migrate",
            [py, "-m", "flotilla.inventory", "migrate"],
            inventory_env,
            oneshot=True,
        ),
        ProcessSpec(
            "orders-migrate", [py, "-m", "flotilla.orders", "migrate"], orders_env, oneshot=True
        ),
        ProcessSpec(
            "payments-migrate",
            [py, "-m", "flotilla.payments", "migrate"],
            payments_env,
            oneshot=True,
        ),
        ProcessSpec(
            "console",
            [py, "-m", "flotilla.console", "api"],
            {
                "FLOTILLA_CONSOLE_DATABASE_PATH": str(var / "console.db"),
                "FLOTILLA_CONSOLE_HOST": host,
                "FLOTILLA_CONSOLE_PORT": str(settings.console_port),
                "FLOTILLA_CONSOLE_PLATFORM_STATUS": str(var / "local" / "status.json"),
                "FLOTILLA_CONSOLE_SERVICES": json.dumps(
                    {
                        "edge": f"http://{host}:{settings.edge_port}",
                        "orders-api": orders_url,
                        "inventory-api": inventory_url,
                        "payments-api": payments_url,
                    }
                ),
                "PYTHONUNBUFFERED": "1",
                # NOTE: the console must not trace itself into itself (a feedback loop).
                "OTEL_SDK_DISABLED": "true",
            },
            ready=lambda: _http_ready(f"{console_url}/healthz"),
        ),
        ProcessSpec(
            "inventory-api",
            [py, "-m", "flotilla.inventory", "api"],
            {
                **inventory_env,
                **traced,
                **metrics("INVENTORY"),
                "OTEL_SERVICE_NAME": "inventory-api",
            },
            ready=lambda: _http_ready(f"{inventory_url}/readyz"),
        ),
        ProcessSpec(
            "payments-api",
            [py, "-m", "flotilla.payments", "api"],
            {**payments_env, **traced, **metrics("PAYMENTS"), "OTEL_SERVICE_NAME": "payments-api"},
            ready=lambda: _http_ready(f"{payments_url}/readyz"),
        ),
        ProcessSpec(
            "orders-api",
            [py, "-m", "flotilla.orders", "api"],
            {**orders_env, **traced, **metrics("ORDERS"), "OTEL_SERVICE_NAME": "orders-api"},
            ready=lambda: _http_ready(f"{orders_url}/readyz"),
        ),
        ProcessSpec(
            "orders-worker",
            [py, "-m", "flotilla.orders", "worker"],
            {**orders_env, **traced, **metrics("ORDERS"), "OTEL_SERVICE_NAME": "orders-worker"},
            queue="orders",
        ),
        ProcessSpec(
            "notifications-worker",
            [py, "-m", "flotilla.notifications", "worker"],
            {
                **traced,
                **metrics("NOTIFICATIONS"),
                "OTEL_SERVICE_NAME": "notifications-worker",
                "FLOTILLA_NOTIFICATIONS_BROKER_URL": broker.url,
                "FLOTILLA_NOTIFICATIONS_SMTP_HOST": host,
                "FLOTILLA_NOTIFICATIONS_SMTP_PORT": str(settings.smtp_port),
            },
            queue="notifications",
        ),
        ProcessSpec(
            "mail-sink",
            [
                py,
                "-m",
                "flotilla.cli.mailsink",
                "--host",
                host,
                "--port",
                str(settings.smtp_port),
                "--dir",
                str(var / "mail"),
            ],
            {"PYTHONUNBUFFERED": "1"},
            ready=lambda: _port_open(host, settings.smtp_port),
        ),
        ProcessSpec(
            "edge",
            [py, "-m", "flotilla.edge", "api"],
            {
                **traced,
                "OTEL_SERVICE_NAME": "edge",
                "FLOTILLA_EDGE_HOST": host,
                "FLOTILLA_EDGE_PORT": str(settings.edge_port),
                "FLOTILLA_EDGE_ADMIN_HOST": host,
                "FLOTILLA_EDGE_ADMIN_PORT": str(settings.edge_admin_port),
                "FLOTILLA_EDGE_UPSTREAMS": json.dumps(upstreams),
                # the customer scopes (the default) for the local key; the operator's own
                "FLOTILLA_EDGE_API_KEYS": (
                    f"local:{key_hash},operator:{operator_hash}:"
                    "orders:read orders:write orders:admin inventory:read"
                ),
                # NOTE: locally a developer's client may continue its own trace
                "FLOTILLA_EDGE_TRUST_TRACE_CONTEXT": "true",
                "FLOTILLA_EDGE_REDIS_URL": _without_query(broker.url),
            },
            ready=lambda: _http_ready(f"http://{host}:{settings.edge_port}/readyz"),
        ),
    ]
    return [dataclasses.replace(spec, env={**libraries, **spec.env}) for spec in specs]
