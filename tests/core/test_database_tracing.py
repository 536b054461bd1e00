"""What a database transaction leaves in a trace: a count and a time on the span it ran under;
a span of its own only for a statement that was slow or failed.

Real SQLite file and real PostgreSQL, engines from ``flotilla.core.make_engine``; spans go to
memory.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flotilla.core import _statements, make_engine, read_only, session_factory

pytestmark = pytest.mark.integration


def test_statements_count_on_their_span_and_none_gets_a_span_of_its_own(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    """Four quick statements under one request: no statement span (half of an order's spans
    were these), the request's span says four ran and how long they took together."""
    engine = make_engine(database_url)
    sessions, reads = session_factory(engine), session_factory(read_only(engine))
    try:
        with sessions() as session:
            session.execute(sa.text("CREATE TABLE IF NOT EXISTS notes (body TEXT)"))
            session.commit()
        spans.clear()
        with trace.get_tracer("test").start_as_current_span("request"):
            for _ in range(3):
                with sessions() as session:
                    session.execute(sa.text("INSERT INTO notes VALUES ('x')"))
                    session.commit()
            with reads() as session:
                assert session.execute(sa.text("SELECT count(*) FROM notes")).scalar_one() == 3
        (request,) = spans.get_finished_spans()
        attributes = dict(request.attributes or {})
        assert request.name == "request"
        assert attributes["db.client.operations"] == 4
        assert attributes["db.client.operations.duration_ms"] > 0
    finally:
        engine.dispose()


def test_a_slow_statement_and_a_failed_one_get_spans_of_their_own(
    spans: InMemorySpanExporter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_statements.SLOW_STATEMENT_VARIABLE, "0")  # every statement is "slow"
    engine = make_engine(database_url)
    try:
        spans.clear()
        with (
            trace.get_tracer("test").start_as_current_span("request") as request,
            engine.connect() as connection,
        ):
            connection.execute(sa.text("SELECT 1"))
            with pytest.raises(sa.exc.DBAPIError):
                connection.execute(sa.text("SELECT * FROM no_such_table"))
        finished = {s.name.split()[0]: s for s in spans.get_finished_spans()}
        select = [s for s in spans.get_finished_spans() if s.name.startswith("SELECT")]
        assert len(select) == 2
        ok, failed = sorted(select, key=lambda s: s.status.status_code == StatusCode.ERROR)
        assert ok.kind == SpanKind.CLIENT and ok.parent is not None
        assert ok.parent.span_id == request.get_span_context().span_id
        assert ok.attributes is not None and ok.attributes["db.query.text"] == "SELECT 1"
        assert failed.status.status_code == StatusCode.ERROR
        assert failed.attributes is not None and failed.attributes["error.type"]
        assert ok.start_time is not None and ok.end_time is not None
        assert ok.start_time < ok.end_time <= finished["request"].end_time  # timed as it ran
    finally:
        engine.dispose()
