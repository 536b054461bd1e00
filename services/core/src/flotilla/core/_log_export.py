"""Every process's log records over OTLP, beside its spans, with their trace and span ids.

``OTEL_LOGS_EXPORTER`` chooses the exporters, comma separated: ``otlp`` (the default, as the
OpenTelemetry specification has it: OTLP/HTTP to ``OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT``, the
same place the spans go: locally the console, in the cluster the collector), ``console``,
``none``. ``OTEL_SDK_DISABLED=true`` turns them off with traces and metrics.

A record reaches the exporter through the root logger's handler, so what a logger's level
holds back (the libraries' INFO lines, ``FLOTILLA_LIBRARY_LOG_LEVEL``) is not exported
either. The handler is OpenTelemetry's own (``opentelemetry-instrumentation-logging``; the
SDK's is deprecated): it takes the trace and span ids from the active span, the level as
severity, the message as body and ``extra=`` fields as attributes.
"""

from __future__ import annotations

import logging

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.resources import Resource

from ._exporters import chosen
from ._log_records import as_attributes

logger = logging.getLogger(__name__)

#: Loggers whose records are not exported: the export's own (its HTTP client's warnings when
#: the receiver is away would otherwise be queued for that same receiver, one per failure).
UNEXPORTED_LOGGERS = ("opentelemetry", "urllib3", "requests")

_provider: LoggerProvider | None = None
_handler: logging.Handler | None = None


def _exported(record: logging.LogRecord) -> bool:
    if record.name.startswith(UNEXPORTED_LOGGERS):
        return False
    as_attributes(record)  # NOTE: plumbing dropped, mappings flattened (_log_records.py)
    return True


def _otlp_log_exporter() -> LogRecordExporter:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter()


def _exporters() -> list[LogRecordExporter]:
    return chosen(
        "OTEL_LOGS_EXPORTER",
        "otlp",
        {"otlp": _otlp_log_exporter, "console": ConsoleLogRecordExporter},
    )


def configure_log_export(resource: Resource) -> None:
    """Export this process's log records as ``OTEL_LOGS_EXPORTER`` says (once per process).

    Args:
        resource: the process's resource (its ``service.name``), shared with its spans.
    """
    global _provider, _handler
    if _provider is not None:
        return
    exporters = _exporters()
    if not exporters:
        return
    provider = LoggerProvider(resource=resource)
    for exporter in exporters:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    handler.addFilter(_exported)
    logging.getLogger().addHandler(handler)
    _provider, _handler = provider, handler


def export_handlers() -> list[logging.Handler]:
    """The root logger's export handler, if any (``configure_logging`` keeps it)."""
    return [_handler] if _handler is not None else []


def flush_logs(timeout_ms: int = 5000) -> None:
    """Export every record logged so far (graceful shutdown)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def shutdown_logs() -> None:
    """Flush, stop the exporters and take the handler off the root logger."""
    global _provider, _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
    if _provider is not None:
        _provider.shutdown()
    _provider = _handler = None
