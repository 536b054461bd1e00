"""OpenTelemetry metrics for every process: a Prometheus scrape endpoint and, where a collector
listens, OTLP.

``OTEL_METRICS_EXPORTER`` chooses the readers, comma separated: ``prometheus`` (the default:
the metrics are kept for a scrape, served on the component's ``FLOTILLA_<COMPONENT>_METRICS_PORT``
when it is set),
``otlp`` (pushed every ``OTEL_METRIC_EXPORT_INTERVAL`` ms to
``OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT``, as the chart does for its collector), ``console``,
``none``. ``OTEL_SDK_DISABLED=true`` turns metrics off with traces.

Names and attributes follow the OpenTelemetry semantic conventions (the stable HTTP ones:
:func:`prefer_stable_semconv`), so the instrumentations' own ``http.server.request.duration``
and ``http.client.request.duration`` come with ``http.route`` templates, never raw paths; the
platform adds ``db.client.operation.duration`` (:func:`record_db_operations`) and Dramatiq's
(:class:`~flotilla.core.MessagingMetrics`). In Prometheus a name's dots become underscores,
seconds get ``_seconds`` and counters ``_total``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from prometheus_client import CollectorRegistry, generate_latest

from ._exporters import chosen

logger = logging.getLogger(__name__)

#: Seconds; the buckets of every duration histogram the platform itself records.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

_registry = CollectorRegistry(auto_describe=True)
_meter_provider: MeterProvider | None = None
#: the readers that push (OTLP, console): what a flush is for
_push_readers: list[MetricReader] = []
_server: Any = None
_lock = threading.Lock()


def prefer_stable_semconv() -> None:
    """Have the contrib instrumentations use the stable HTTP semantic conventions
    (``http.server.request.duration`` in seconds, ``http.request.method``, ``url.path``)
    unless ``OTEL_SEMCONV_STABILITY_OPT_IN`` says otherwise. Must run before the first
    instrumentation: they read the variable once."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


def metrics_registry() -> CollectorRegistry:
    """The Prometheus registry the process's OpenTelemetry metrics are read into."""
    return _registry


def scrape() -> bytes:
    """The process's metrics in the Prometheus text format (what ``/metrics`` answers)."""
    return bytes(generate_latest(_registry))


def _prometheus_reader() -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    return PrometheusMetricReader(registry=_registry)


def _pushed(exporter: Any) -> MetricReader:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(exporter)
    _push_readers.append(reader)
    return reader


def _otlp_reader() -> MetricReader:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return _pushed(OTLPMetricExporter())


def _console_reader() -> MetricReader:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return _pushed(ConsoleMetricExporter())


def _readers() -> list[MetricReader]:
    return chosen(
        "OTEL_METRICS_EXPORTER",
        "prometheus",
        {"prometheus": _prometheus_reader, "otlp": _otlp_reader, "console": _console_reader},
    )


def configure_metrics(
    resource: Any, *, port: int | None = None, host: str = "127.0.0.1"
) -> MeterProvider | None:
    """Install the global meter provider (once) and, given a ``port``, serve ``/metrics`` there
    from a thread.

    Raises:
        OSError: the port cannot be bound.
    """
    global _meter_provider, _server
    with _lock:
        if _meter_provider is not None:
            return _meter_provider
        provider = MeterProvider(resource=resource, metric_readers=_readers())
        metrics.set_meter_provider(provider)
        _meter_provider = provider
        if port:
            from prometheus_client import start_http_server

            _server, _thread = start_http_server(port, addr=host, registry=_registry)
            logger.info("metrics served", extra={"url": f"http://{host}:{port}/metrics"})
        return provider


def flush_metrics() -> None:
    """Push what the pushing readers (OTLP) have not pushed yet: a graceful stop.

    NOTE: never a flush of the whole provider: that makes the Prometheus reader collect too,
    and it queues each collection until the next scrape, which then shows every queued one
    (duplicate families, and labels shifted between them: opentelemetry-exporter-prometheus
    0.66b1 joins them under the first one's label names)."""
    for reader in _push_readers:
        reader.force_flush(timeout_millis=5000)
