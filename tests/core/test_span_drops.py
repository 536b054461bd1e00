"""Spans the batch processor drops at saturation are counted and said, not silent: a real
process whose exporter is slower than its spans come (the console behind a slow proxy, a
queue of 20), and the console's /services showing each service's drops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from flotilla.console import ConsoleSettings, create_app
from flotilla.console._store import SpanStore
from tests.support.servers import serve_in_thread
from tests.support.slow_proxy import slow_proxy

pytestmark = pytest.mark.integration

SPANS = 300
PROCESS = textwrap.dedent(
    f"""
    from opentelemetry import trace
    from flotilla.core import configure_logging, configure_telemetry

    configure_logging("busy-api")
    configure_telemetry("busy-api")
    tracer = trace.get_tracer("t")
    for i in range({SPANS}):
        with tracer.start_as_current_span("GET /x", kind=trace.SpanKind.SERVER):
            pass
    """
)


def test_spans_dropped_at_saturation_are_counted_said_and_shown_per_service(
    tmp_path: Path,
) -> None:
    settings = ConsoleSettings(database_path=str(tmp_path / "console.db"))
    script = tmp_path / "busy.py"
    script.write_text(PROCESS)
    with serve_in_thread(create_app(settings)) as console:
        port = int(console.rsplit(":", 1)[1])
        with slow_proxy(port) as proxy:
            proxy.delay_s = 0.3  # every chunk the exporter sends waits: a slow collector
            env = {
                **os.environ,
                "OTEL_EXPORTER_OTLP_ENDPOINT": proxy.url,
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_BSP_MAX_QUEUE_SIZE": "20",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
            }
            done = subprocess.run(
                [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
            )
        assert done.returncode == 0, done.stderr
        said = [json.loads(x) for x in done.stderr.splitlines() if "spans dropped" in x]
        shown = httpx.get(f"{console}/api/services", params={"minutes": 5}).json()
    dropped = sum(line["spans.dropped"] for line in said)
    assert dropped > 0 and all(line["level"] == "warning" for line in said)
    store = SpanStore(settings.database_path, max_spans=10_000, max_age_s=3600)
    stored = store.span_count()
    store.close()
    assert stored + dropped == SPANS  # every span is either stored or counted as dropped
    assert shown["dropped_spans"] == {"busy-api": dropped}
