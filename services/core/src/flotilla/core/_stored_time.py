"""Time as the services store and compare it: aware UTC in Python, while SQLite keeps naive UTC
text and PostgreSQL instants (both services' databases run on either)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A datetime read back from the database, aware: SQLite hands it back naive (it was
    stored in UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_stored(session: Any, moment: datetime | None = None) -> datetime:
    """``moment`` (by default now) as the session's database compares it: SQLite compares the
    naive UTC text it stored, PostgreSQL instants. ``session``: a SQLAlchemy ``Session``."""
    moment = moment or utcnow()
    return moment.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else moment
