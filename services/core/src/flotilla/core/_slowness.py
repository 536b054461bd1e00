"""A database call folded into the span it ran under, and when it earns a span of its own:
SQL statements (``_statements.py``) and Redis commands (``_folding.py``) alike. Free of
SQLAlchemy: the edge has no database."""

from __future__ import annotations

import os
from typing import Any

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


def add_to_span(span: Any, *, count: str, total_ms: str, seconds: float) -> None:
    """One more call of ``seconds`` under ``span``: its ``count`` attribute grows by one and
    its ``total_ms`` attribute by the call's milliseconds (a span that no longer records is
    left alone)."""
    if not span.is_recording():
        return
    seen = getattr(span, "attributes", None) or {}
    span.set_attribute(count, int(seen.get(count, 0)) + 1)
    span.set_attribute(total_ms, round(float(seen.get(total_ms, 0.0)) + seconds * 1000, 3))
