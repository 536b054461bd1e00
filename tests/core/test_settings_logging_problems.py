"""The shared library's plain behaviour: settings, JSON logs, problems, health checks."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr, ValidationError

from flotilla.core import (
    PROBLEM_TYPE_BASE,
    ComponentSettings,
    JsonFormatter,
    ProblemError,
    component_config,
    field_path,
    run_checks,
)

pytestmark = pytest.mark.integration


class DemoSettings(ComponentSettings):
    model_config = component_config("DEMO")
    secret_fields = ("api_secret",)

    port: int = 8000
    api_secret: SecretStr = SecretStr("changeme")


def test_settings_read_their_component_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_DEMO_PORT", "9123")
    monkeypatch.setenv("FLOTILLA_OTHER_PORT", "1")
    assert DemoSettings().port == 9123


def test_placeholder_secret_is_accepted_locally_but_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert DemoSettings().api_secret.get_secret_value() == "changeme"
    monkeypatch.setenv("FLOTILLA_DEMO_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="FLOTILLA_DEMO_API_SECRET holds a placeholder"):
        DemoSettings()
    monkeypatch.setenv("FLOTILLA_DEMO_API_SECRET", "a-real-secret-of-some-length")
    assert DemoSettings().environment == "production"


def test_json_log_lines_carry_the_current_trace_and_span(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("orders-api")
    record = logging.LogRecord("flotilla", logging.INFO, __file__, 1, "order %s", ("42",), None)
    record.order_id = "42"
    with trace.get_tracer("test").start_as_current_span("request") as span:
        line = json.loads(formatter.format(record))
    context = span.get_span_context()
    assert line["message"] == "order 42"
    assert line["service"] == "orders-api"
    assert line["order_id"] == "42"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_log_lines_outside_a_span_have_no_trace_fields() -> None:
    record = logging.LogRecord("flotilla", logging.WARNING, __file__, 1, "idle", (), None)
    line = json.loads(JsonFormatter("edge").format(record))
    assert "trace_id" not in line
    assert line["level"] == "warning"


def test_problem_error_names_the_field_at_fault() -> None:
    error = ProblemError(
        409,
        "Not enough stock",
        "only 3 left of SKU-1",
        slug="insufficient-stock",
        field="items.0.quantity",
        sku="SKU-1",
    )
    body = error.problem.to_dict()
    assert body["type"] == PROBLEM_TYPE_BASE + "insufficient-stock"
    assert body["status"] == 409
    assert body["sku"] == "SKU-1"
    assert body["errors"] == [{"field": "items.0.quantity", "message": "only 3 left of SKU-1"}]


def test_field_path_drops_the_location_prefix() -> None:
    assert field_path(("body", "items", 0, "sku")) == "items.0.sku"
    assert field_path(("body",)) == "body"


def test_readiness_reports_each_check_and_fails_when_one_fails() -> None:
    async def database() -> None:
        return None

    def broker() -> None:
        raise ConnectionError("connection refused")

    report = asyncio.run(run_checks({"database": database, "broker": broker}))
    assert not report.ready
    assert report.checks["database"]["ok"] is True
    assert report.checks["broker"] == {
        "ok": False,
        "error": "ConnectionError: connection refused",
        "required": True,
    }
    assert report.to_dict()["status"] == "unready"


def test_an_informational_check_is_reported_but_never_makes_a_component_unready() -> None:
    """orders-api with its broker down: ready (the outbox holds orders), and says why."""

    def broker() -> None:
        raise ConnectionError("connection refused")

    report = asyncio.run(run_checks({"database": lambda: None}, informational={"broker": broker}))
    assert report.ready
    assert report.checks["broker"]["ok"] is False and report.checks["broker"]["required"] is False
    assert report.checks["database"]["required"] is True


def test_a_hanging_check_times_out_instead_of_hanging_readiness() -> None:
    async def slow() -> None:
        await asyncio.sleep(5)

    report = asyncio.run(run_checks({"slow": slow}, timeout_s=0.1))
    assert not report.ready
    assert report.checks["slow"]["error"].startswith("TimeoutError")


QUIET = """
import logging
from flotilla.core import configure_logging
configure_logging("quiet-probe", "INFO")
logging.getLogger("alembic.runtime.migration").info("Running upgrade -> 0001")
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("alembic.runtime.migration").warning("a warning passes")
logging.getLogger("flotilla.orders").info("our own line passes")
"""


@pytest.mark.parametrize(("level", "shown"), [("WARNING", 2), ("INFO", 4), ("", 4)])
def test_the_libraries_start_lines_follow_their_own_level(level: str, shown: int) -> None:
    """``FLOTILLA_LIBRARY_LOG_LEVEL`` (``flotilla up`` sets WARNING unless ``--verbose``)
    silences Alembic's and uvicorn's INFO lines; their warnings and the component's own
    lines pass; unset, everything at the root's level passes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "FLOTILLA_LIBRARY_LOG_LEVEL": level}
    out = subprocess.run(
        [sys.executable, "-c", QUIET], env=env, capture_output=True, text=True, check=True
    )
    lines = out.stderr.strip().splitlines()
    assert len(lines) == shown, lines
    assert any("a warning passes" in line for line in lines)
    assert any("our own line passes" in line for line in lines)
