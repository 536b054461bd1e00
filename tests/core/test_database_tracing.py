"""What a database transaction leaves in a trace: its statements, nothing else.

Real SQLite file and real PostgreSQL, with OpenTelemetry's SQLAlchemy instrumentation as the
services install it (``flotilla.core.instrument_sqlalchemy``); spans go to memory.
"""

from __future__ import annotations

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import instrument_sqlalchemy, make_engine, read_only, session_factory


def test_a_transaction_is_traced_as_its_statements_without_connect_or_begin_spans(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    """The instrumentation's "connect" span per pool checkout and SQLite's BEGIN IMMEDIATE
    were a third of an order's spans and told a reader nothing; statements still trace."""
    instrument_sqlalchemy()
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
        names = [s.name.split()[0] for s in spans.get_finished_spans()]
        assert names.count("INSERT") == 3 and names.count("SELECT") == 1
        assert "connect" not in names and "BEGIN" not in names
        assert names[-1] == "request"
    finally:
        engine.dispose()
