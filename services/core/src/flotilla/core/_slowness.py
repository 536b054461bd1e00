"""When a database call earns a span of its own: SQL statements (``_statements.py``) and
Redis commands (``_folding.py``) alike. Free of SQLAlchemy: the edge has no database."""

from __future__ import annotations

import os

#: a statement or command at least this slow (milliseconds) gets a span of its own
SLOW_STATEMENT_VARIABLE = "FLOTILLA_DB_SLOW_STATEMENT_MS"
DEFAULT_SLOW_STATEMENT_MS = 50.0


def slow_statement_s() -> float:
    """The slowness that earns a statement its own span, in seconds (from the environment)."""
    raw = os.environ.get(SLOW_STATEMENT_VARIABLE, "").strip()
    try:
        return float(raw) / 1000 if raw else DEFAULT_SLOW_STATEMENT_MS / 1000
    except ValueError:
        return DEFAULT_SLOW_STATEMENT_MS / 1000
