"""Fixtures shared by the whole test tree: real backends and an in-memory span exporter."""

from __future__ import annotations

import os

os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")  # unit tests export to memory only
os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")  # likewise; a test that exports sets it
# NOTE: as configure_telemetry sets it in every process; the instrumentations read it once
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import configure_telemetry
from tests.support.services import POSTGRES_URL, RABBITMQ_URL, REDIS_URL, require

#: tests/cluster is `make e2e`'s, against a real cluster: never part of `make test`
collect_ignore = [] if os.environ.get("FLOTILLA_CLUSTER_E2E") else ["cluster"]


@pytest.fixture
def redis_url() -> str:
    """A real Redis; the URL carries a fresh Dramatiq namespace so tests never share keys."""
    base = require(REDIS_URL, 6379, "Redis")
    return f"{base}?namespace=flotilla-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rabbitmq_url() -> str:
    """A real RabbitMQ server."""
    return require(RABBITMQ_URL, 5672, "RabbitMQ")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    base = require(POSTGRES_URL, 5432, "PostgreSQL")
    name = f"flotilla_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this test process finishes, recorded in memory (no network)."""
    configure_telemetry("flotilla-tests", exporter=_EXPORTER)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """One test body, two databases: a SQLite file (local runtime) and PostgreSQL (cluster)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/service.db"
    return str(request.getfixturevalue("postgres_url"))


#: the tiers (pyproject.toml's markers say what each needs); `make test-fast` runs the first two
TIERS = ("unit", "integration", "e2e", "browser", "containers", "chaos", "cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries exactly one tier (a module's ``pytestmark``): a test without one
    would silently fall out of `make test-fast` or into it, so collection stops and names it."""
    wrong = []
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {sorted(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(
            "each test needs exactly one tier marker (pytestmark = pytest.mark.<tier>, one of "
            f"{', '.join(TIERS)}): " + "; ".join(wrong[:10])
        )
