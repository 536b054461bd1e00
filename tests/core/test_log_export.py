"""Every process exports its log records over OTLP with their trace and span ids: a real
process (configure_logging then configure_telemetry, as every component starts) logging to a
real console over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.console import ConsoleSettings, create_app
from flotilla.console._store import SpanStore
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

#: a component's start, then lines in and out of a span, then a plain exit (no flush called)
PROCESS = textwrap.dedent(
    """
    import logging, sys
    from opentelemetry import trace
    from flotilla.core import configure_logging, configure_telemetry

    configure_logging("shop-api")
    configure_telemetry("shop-api")
    configure_logging("shop-api")  # a second call (tests, reloads) keeps the export handler
    log = logging.getLogger("shop.orders")
    log.info("before any span")
    with trace.get_tracer("t").start_as_current_span("POST /orders") as span:
        log.info("order accepted", extra={"order": "o-1", "amount_cents": 4200})
        log.warning("stock is low")
        logging.getLogger("alembic.runtime").info("a library's start line")
        logging.getLogger("urllib3.connectionpool").warning("the exporter's own HTTP client")
        busy = "\\033[1mserver busy\\033[0m"  # uvicorn's ANSI copy of its message
        logging.getLogger("uvicorn.error").warning("server busy", extra={"color_message": busy})
        # kopf's line about an object: its settings object and a posting flag ride along
        kopf = {"settings": object(), "k8s_skip": False, "k8s_ref": {"kind": "WA", "name": "o"}}
        logging.getLogger("kopf.objects").info("daemon exited", extra=kopf)
        try:
            raise ValueError("card declined")
        except ValueError:
            log.exception("charge failed")
        print(format(span.get_span_context().trace_id, "032x"))
    """
)


def run_process(console: str, tmp_path: Path, **env: str) -> str:
    """Run the process with the given exporter settings; its trace id. Its JSON lines on
    stderr must be free of plumbing and of OpenTelemetry's complaints about attributes."""
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    variables = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": console,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "FLOTILLA_LIBRARY_LOG_LEVEL": "WARNING",
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=variables, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Invalid type" not in done.stderr and '"settings"' not in done.stderr, done.stderr
    kopf = [json.loads(x) for x in done.stderr.splitlines() if "daemon exited" in x]
    assert kopf[0]["k8s_ref"] == {"kind": "WA", "name": "o"} and "k8s_skip" not in kopf[0]
    return done.stdout.strip()


def trace_logs(console: str, trace_id: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = httpx.get(f"{console}/api/traces/{trace_id}").json()["logs"]
    return logs


def test_a_process_exports_its_log_records_beside_its_spans(tmp_path: Path) -> None:
    """The lines logged in the span come back with the trace (the span's id, level, extra
    fields as attributes, a mapping as one attribute per key, the exception's type and
    stack), exported at exit without a flush;
    a library line held back by FLOTILLA_LIBRARY_LOG_LEVEL and the exporter's own HTTP
    client's lines are not exported, nor uvicorn's coloured copy of a message; the line before
    any span is kept but in no trace."""
    settings = ConsoleSettings(database_path=str(tmp_path / "console.db"))
    with serve_in_thread(create_app(settings)) as console:
        trace_id = run_process(console, tmp_path)
        (span,) = httpx.get(f"{console}/api/traces/{trace_id}").json()["spans"]
        logs = trace_logs(console, trace_id)
        stored = httpx.get(f"{console}/api/traces/{trace_id}").json()
    assert [(line["level"], line["body"]) for line in logs] == [
        ("info", "order accepted"),
        ("warn", "stock is low"),
        ("warn", "server busy"),
        ("info", "daemon exited"),
        ("error", "charge failed"),
    ]
    assert {line["service"] for line in logs} == {"shop-api"}
    assert {line["span_id"] for line in logs} == {span["span_id"]}
    assert logs[0]["attributes"] == {"order": "o-1", "amount_cents": 4200}
    assert logs[2]["attributes"] == {}  # not uvicorn's coloured copy
    assert logs[3]["attributes"] == {"k8s_ref.kind": "WA", "k8s_ref.name": "o"}
    failed = logs[4]["attributes"]
    assert failed["exception.type"] == "ValueError"
    assert "card declined" in failed["exception.stacktrace"]
    assert stored["trace_id"] == trace_id
    store = SpanStore(settings.database_path, max_spans=100, max_age_s=3600)
    assert store.log_count() == 6  # and "before any span", in no trace; nothing else
    store.close()


def test_otel_logs_exporter_none_exports_nothing(tmp_path: Path) -> None:
    settings = ConsoleSettings(database_path=str(tmp_path / "console.db"))
    with serve_in_thread(create_app(settings)) as console:
        trace_id = run_process(console, tmp_path, OTEL_LOGS_EXPORTER="none")
        assert httpx.get(f"{console}/api/traces/{trace_id}").status_code == 200  # spans came
        assert trace_logs(console, trace_id) == []
