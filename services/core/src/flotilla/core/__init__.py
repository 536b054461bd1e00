"""Flotilla's shared library: what every component takes from the platform.

Settings, JSON logging with trace correlation, OpenTelemetry set-up, Dramatiq brokers with
trace-context propagation, the schemas of messages that cross services, pooled HTTP clients,
RFC 9457 problems, health checks and graceful serving. It imports no other Flotilla member.
FastAPI glue lives in :mod:`flotilla.core.fastapi`.
"""

from ._brokers import (
    BrokerUnavailable,
    BrokerURLError,
    broker_from_url,
    broker_holds,
    broker_kind,
    broker_system,
    pod_of_worker,
    redis_client,
    redis_namespace,
    worker_identity,
    worker_name,
)
from ._database import is_sqlite, make_engine, read_only, schema_check, session_factory
from ._health import Check, HealthReport, run_checks
from ._http import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    async_service_client,
    service_client,
    translate_http_error,
)
from ._identity import (
    CLIENT_ID_HEADER,
    CLIENT_SCOPES_HEADER,
    CUSTOMER_SCOPES,
    OPERATOR_SCOPE,
)
from ._logging import JsonFormatter, configure_logging
from ._messages import (
    FulfilOrder,
    OrderConfirmation,
    OrderLine,
    Published,
    QueueMessage,
    build_message,
    publish,
    send_message,
)
from ._migrations import migrate_database, upgrade_database
from ._problems import (
    DEPENDENCY_FAILURE_HEADER,
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    FieldError,
    Problem,
    ProblemError,
    field_path,
)
from ._serve import serve
from ._settings import PLACEHOLDER_SECRETS, ComponentSettings, component_config
from ._telemetry import (
    configure_telemetry,
    current_trace_id,
    flush_telemetry,
    instrument_asgi,
    instrument_fastapi,
    instrument_httpx,
    instrument_redis,
    instrument_sqlalchemy,
    shutdown_telemetry,
    telemetry_enabled,
)
from ._tracing_middleware import (
    ATTEMPT_ATTRIBUTE,
    DELAY_ATTRIBUTE,
    QUEUE_WAIT_ATTRIBUTE,
    TRACE_CONTEXT_OPTION,
    TraceContextMiddleware,
)
from ._worker import drain_timeout_for, run_worker

__all__ = [
    "ATTEMPT_ATTRIBUTE",
    "CLIENT_ID_HEADER",
    "CLIENT_SCOPES_HEADER",
    "CUSTOMER_SCOPES",
    "DELAY_ATTRIBUTE",
    "DEPENDENCY_FAILURE_HEADER",
    "OPERATOR_SCOPE",
    "PLACEHOLDER_SECRETS",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "QUEUE_WAIT_ATTRIBUTE",
    "TRACE_CONTEXT_OPTION",
    "BrokerURLError",
    "BrokerUnavailable",
    "Check",
    "ComponentSettings",
    "FieldError",
    "FulfilOrder",
    "HealthReport",
    "JsonFormatter",
    "OrderConfirmation",
    "OrderLine",
    "Problem",
    "ProblemError",
    "Published",
    "QueueMessage",
    "TraceContextMiddleware",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
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
    "field_path",
    "flush_telemetry",
    "instrument_asgi",
    "instrument_fastapi",
    "instrument_httpx",
    "instrument_redis",
    "instrument_sqlalchemy",
    "is_sqlite",
    "make_engine",
    "migrate_database",
    "pod_of_worker",
    "publish",
    "read_only",
    "redis_client",
    "redis_namespace",
    "run_checks",
    "run_worker",
    "schema_check",
    "send_message",
    "serve",
    "service_client",
    "session_factory",
    "shutdown_telemetry",
    "telemetry_enabled",
    "translate_http_error",
    "upgrade_database",
    "worker_identity",
    "worker_name",
]
