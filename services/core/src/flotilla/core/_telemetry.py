"""OpenTelemetry set-up that honours the standard ``OTEL_*`` variables.

The SDK itself reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` and ``OTEL_BSP_*``;
this module only supplies the component's name when none is configured, chooses the exporter
from ``OTEL_TRACES_EXPORTER`` (``otlp`` over HTTP by default, ``console``, ``none``) and turns
the whole thing off with ``OTEL_SDK_DISABLED=true``. The same resource names the process's
metrics (:mod:`flotilla.core._metrics`) and its exported logs (:mod:`flotilla.core._log_export`).
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from ._exporters import chosen
from ._folding import FoldingProcessor
from ._log_export import configure_log_export, flush_logs, shutdown_logs
from ._metrics import configure_metrics, flush_metrics, prefer_stable_semconv
from ._span_drops import REPORT_EVERY_S, CountingBatchSpanProcessor, DropReporter

logger = logging.getLogger(__name__)

_provider: TracerProvider | None = None
#: the span processors of ``_provider`` (a Redis span that is not folded goes to each)
_processors: list[SpanProcessor] = []
_extra_exporters: list[SpanExporter] = []
_drops: DropReporter | None = None


def telemetry_enabled() -> bool:
    """Whether ``OTEL_SDK_DISABLED`` leaves tracing on."""
    return os.environ.get("OTEL_SDK_DISABLED", "false").strip().lower() != "true"


def _service_resource(default_service_name: str) -> Resource:
    configured = os.environ.get("OTEL_SERVICE_NAME") or any(
        item.strip().startswith("service.name=")
        for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    )
    # NOTE: attributes passed to Resource.create override the environment, so the default
    # name is only passed when the environment names no service.
    return Resource.create({} if configured else {SERVICE_NAME: default_service_name})


def _otlp_span_exporter() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _exporters() -> list[SpanExporter]:
    return chosen(
        "OTEL_TRACES_EXPORTER",
        "otlp",
        {"otlp": _otlp_span_exporter, "console": ConsoleSpanExporter},
    )


def _add_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    """Add ``processor`` to ``provider``; the folded Redis spans that are kept go to it too."""
    provider.add_span_processor(processor)
    _processors.append(processor)


def configure_telemetry(
    default_service_name: str,
    *,
    exporter: SpanExporter | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> TracerProvider | None:
    """Install the global tracer provider for this process, its meter provider
    (:mod:`flotilla.core._metrics`) and its log export (:mod:`flotilla.core._log_export`).

    Args:
        default_service_name: used as ``service.name`` unless ``OTEL_SERVICE_NAME`` or
            ``OTEL_RESOURCE_ATTRIBUTES`` names the service.
        exporter: an extra exporter, flushed synchronously (tests use an in-memory one).
        metrics_port: serve ``/metrics`` for a scrape on this port (a component's
            ``metrics_port`` setting); ``None``: no listener.
        metrics_host: the address that listener binds.

    Returns:
        The provider, or ``None`` when ``OTEL_SDK_DISABLED=true``.
    """
    global _provider, _drops
    if not telemetry_enabled():
        return None
    prefer_stable_semconv()
    if _provider is not None:
        if exporter is not None and all(exporter is not e for e in _extra_exporters):
            _extra_exporters.append(exporter)
            _add_processor(_provider, SimpleSpanProcessor(exporter))
        return _provider
    resource = _service_resource(default_service_name)
    provider = TracerProvider(resource=resource)
    configure_metrics(resource, port=metrics_port, host=metrics_host)
    batching = [CountingBatchSpanProcessor(each) for each in _exporters()]
    for processor in batching:
        _add_processor(provider, processor)
    if exporter is not None:
        _extra_exporters.append(exporter)
        _add_processor(provider, SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    configure_log_export(resource)
    _drops = DropReporter(batching, REPORT_EVERY_S) if batching else None
    atexit.register(shutdown_telemetry)
    return provider


def flush_telemetry(timeout_ms: int = 5000) -> None:
    """Export every finished span and log record now (graceful shutdown of a server or worker).

    Unlike :func:`shutdown_telemetry` the provider stays usable, so an in-process server or
    worker in a test can stop without ending tracing for the rest of the process.
    """
    if _provider is not None:
        _provider.force_flush(timeout_ms)
    if _drops is not None:
        _drops.report()
    flush_logs(timeout_ms)
    flush_metrics()


def shutdown_telemetry() -> None:
    """Flush and stop the exporters (called at exit and on graceful shutdown)."""
    global _provider, _drops
    if _drops is not None:
        _drops.stop()  # NOTE: before the log export ends, so its last line goes out
        _drops = None
    if _provider is not None:
        _provider.shutdown()
        _provider = None
        _extra_exporters.clear()
        _processors.clear()
    shutdown_logs()
    flush_metrics()  # NOTE: the meter provider shuts itself down at exit


def instrument_httpx() -> None:
    """Trace every httpx request of this process and propagate W3C context on it."""
    if telemetry_enabled():
        prefer_stable_semconv()
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        instrumentor = HTTPXClientInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def instrument_redis() -> None:
    """Trace every redis-py command of this process, folded into the span it ran under
    unless it was slow or failed (:mod:`flotilla.core._folding`)."""
    if telemetry_enabled():
        prefer_stable_semconv()
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            return
        # NOTE: configure_telemetry comes first in a process; a test may instrument before it
        resource = _provider.resource if _provider else _service_resource("flotilla")
        folding = TracerProvider(resource=resource)
        folding.add_span_processor(FoldingProcessor(lambda: _processors))
        instrumentor.instrument(tracer_provider=folding)


def instrument_fastapi(app: Any) -> None:
    """Trace a FastAPI app's requests (server spans, context extracted from headers)."""
    if telemetry_enabled():
        prefer_stable_semconv()
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )


def instrument_asgi(app: Any, *, server_request_hook: Any = None) -> Any:
    """Wrap any ASGI app (the Falcon edge) in OpenTelemetry's ASGI middleware.

    NOTE: opentelemetry-instrumentation-falcon only instruments ``falcon.App`` (WSGI); for
    ``falcon.asgi.App`` the official ASGI instrumentation is the one that works
    (opentelemetry-python-contrib issue 3095).

    Args:
        app: the ASGI app.
        server_request_hook: called with (SERVER span, ASGI scope) as each request starts.
    """
    if not telemetry_enabled():
        return app
    prefer_stable_semconv()
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # NOTE: per-message "http send/receive" spans double the span count for no insight.
    return OpenTelemetryMiddleware(
        app,
        excluded_urls="healthz,readyz,metrics",
        exclude_spans=["receive", "send"],
        server_request_hook=server_request_hook,
    )


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or ``None`` outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
