"""Flotilla's shared library: what every component takes from the platform.

Settings, JSON logging with trace correlation, OpenTelemetry set-up, Dramatiq brokers with
trace-context propagation, the schemas of messages that cross services, pooled HTTP clients,
RFC 9457 problems, health checks and graceful serving. It imports no other Flotilla member.
FastAPI glue lives in :mod:`flotilla.core.fastapi`.

Brokers, messages and workers (extra ``messaging``) and databases (extra ``database``) are
imported when one of their names is first used, so a member that uses neither (the edge, the
console) neither installs nor imports Dramatiq or SQLAlchemy; a missing extra is named in the
``ImportError``.
"""

import typing as _typing

from ._broker_urls import (
    BrokerUnavailable,
    BrokerURLError,
    broker_system,
    pod_of_worker,
    redis_client,
    redis_namespace,
    worker_identity,
    worker_name,
)
from ._health import Check, HealthReport, run_checks
from ._http import async_service_client, service_client, translate_http_error
from ._identity import (
    CLIENT_ID_HEADER,
    CLIENT_SCOPES_HEADER,
)
from ._logging import JsonFormatter, configure_logging
from ._metrics import metrics_registry, scrape
from ._problems import (
    DEPENDENCY_FAILURE_HEADER,
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    FieldError,
    Problem,
    ProblemError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    field_path,
    upstream_problem,
)
from ._serve import serve
from ._settings import PLACEHOLDER_SECRETS, ComponentSettings, component_config
from ._stored_time import as_stored, as_utc, utcnow
from ._telemetry import (
    configure_telemetry,
    current_trace_id,
    flush_telemetry,
    instrument_asgi,
    instrument_fastapi,
    instrument_httpx,
    instrument_redis,
    shutdown_telemetry,
    telemetry_enabled,
)

if _typing.TYPE_CHECKING:
    from ._brokers import EtaIndex, broker_from_url, broker_holds, broker_kind, eta_index_key
    from ._database import (
        application_name,
        is_sqlite,
        make_engine,
        pool_size_for,
        read_only,
        schema_check,
        session_factory,
    )
    from ._messages import (
        Published,
        QueueMessage,
        build_message,
        publish,
        send_message,
    )
    from ._messaging_metrics import MessagingMetrics
    from ._migrations import (
        DatabaseUnavailable,
        migrate_command,
        migrate_database,
        upgrade_database,
        wait_for_database,
    )
    from ._statements import record_db_operations
    from ._tracing_middleware import (
        ATTEMPT_ATTRIBUTE,
        DELAY_ATTRIBUTE,
        QUEUE_WAIT_ATTRIBUTE,
        TRACE_CONTEXT_OPTION,
        TraceContextMiddleware,
    )
    from ._worker import drain_timeout_for, run_worker

#: The names imported on first use: name -> (module, the extra that installs what it needs).
#: Kept in step with the TYPE_CHECKING imports above (tests/test_public_api.py checks both).
_LAZY: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ["EtaIndex", "broker_from_url", "broker_holds", "broker_kind", "eta_index_key"],
        ("_brokers", "messaging"),
    ),
    **dict.fromkeys(
        [
            "application_name",
            "is_sqlite",
            "make_engine",
            "pool_size_for",
            "read_only",
            "schema_check",
            "session_factory",
        ],
        ("_database", "database"),
    ),
    **dict.fromkeys(
        [
            "Published",
            "QueueMessage",
            "build_message",
            "publish",
            "send_message",
        ],
        ("_messages", "messaging"),
    ),
    "record_db_operations": ("_statements", "database"),
    **dict.fromkeys(
        [
            "DatabaseUnavailable",
            "migrate_command",
            "migrate_database",
            "upgrade_database",
            "wait_for_database",
        ],
        ("_migrations", "database"),
    ),
    "MessagingMetrics": ("_messaging_metrics", "messaging"),
    **dict.fromkeys(
        [
            "ATTEMPT_ATTRIBUTE",
            "DELAY_ATTRIBUTE",
            "QUEUE_WAIT_ATTRIBUTE",
            "TRACE_CONTEXT_OPTION",
            "TraceContextMiddleware",
        ],
        ("_tracing_middleware", "messaging"),
    ),
    **dict.fromkeys(["drain_timeout_for", "run_worker"], ("_worker", "messaging")),
}


def __getattr__(name: str) -> _typing.Any:
    """Import a lazily exported name's module on first use (PEP 562)."""
    try:
        module_name, extra = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    from importlib import import_module

    try:
        module = import_module(f".{module_name}", __name__)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"flotilla.core.{name} needs {exc.name!r}, which this environment lacks: "
            f"depend on 'flotilla-core[{extra}]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ATTEMPT_ATTRIBUTE",
    "CLIENT_ID_HEADER",
    "CLIENT_SCOPES_HEADER",
    "DELAY_ATTRIBUTE",
    "DEPENDENCY_FAILURE_HEADER",
    "PLACEHOLDER_SECRETS",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "QUEUE_WAIT_ATTRIBUTE",
    "TRACE_CONTEXT_OPTION",
    "BrokerURLError",
    "BrokerUnavailable",
    "Check",
    "ComponentSettings",
    "DatabaseUnavailable",
    "EtaIndex",
    "FieldError",
    "HealthReport",
    "JsonFormatter",
    "MessagingMetrics",
    "Problem",
    "ProblemError",
    "Published",
    "QueueMessage",
    "TraceContextMiddleware",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "application_name",
    "as_stored",
    "as_utc",
    "async_service_client",
    "broker_from_url",
    "broker_holds",
    "broker_kind",
    "broker_system",
    "build_message",
    "component_config",
    "configure_logging",
    "configure_telemetry",
    "current_trace_id",
    "drain_timeout_for",
    "eta_index_key",
    "field_path",
    "flush_telemetry",
    "instrument_asgi",
    "instrument_fastapi",
    "instrument_httpx",
    "instrument_redis",
    "is_sqlite",
    "make_engine",
    "metrics_registry",
    "migrate_command",
    "migrate_database",
    "pod_of_worker",
    "pool_size_for",
    "publish",
    "read_only",
    "record_db_operations",
    "redis_client",
    "redis_namespace",
    "run_checks",
    "run_worker",
    "schema_check",
    "scrape",
    "send_message",
    "serve",
    "service_client",
    "session_factory",
    "shutdown_telemetry",
    "telemetry_enabled",
    "translate_http_error",
    "upgrade_database",
    "upstream_problem",
    "utcnow",
    "wait_for_database",
    "worker_identity",
    "worker_name",
]
