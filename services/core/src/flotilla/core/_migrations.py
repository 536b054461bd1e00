"""Running a service's Alembic migrations (needs ``flotilla-core[database]``).

A first install starts the database and the pods that migrate it together (the chart's init
containers), so a migration first waits for the database to take a connection: pauses that
grow to 5 s, a log line saying what it waits for, and a bounded patience after which it
fails with the last reason. A refusal that waiting cannot cure (a wrong password, a database
or role that does not exist) fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

logger = logging.getLogger(__name__)

#: The PostgreSQL advisory lock key migrations take (one per database; any fixed 64-bit number).
MIGRATION_LOCK = 0x466C6F74696C6C61  # "Flotilla"
#: How long a migration waits for its database before it gives up.
DATABASE_WAIT_S = 300.0
#: Pauses between two attempts (then the last, until the patience runs out).
DATABASE_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)
#: How often the wait says again that it still waits.
WAITING_LINE_EVERY_S = 30.0
#: What a server answers when only a change of configuration helps.
_FOR_GOOD = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
)


class DatabaseUnavailable(RuntimeError):
    """The database did not take a connection (one line saying why)."""


def _reason(exc: sa.exc.OperationalError) -> str:
    text = str(exc.orig).strip().splitlines()
    return text[0][:300] if text else type(exc.orig).__name__


def wait_for_database(
    engine: sa.Engine,
    *,
    patience_s: float = DATABASE_WAIT_S,
    backoff: tuple[float, ...] = DATABASE_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once ``engine``'s database takes a connection (see the module docstring).

    Raises:
        DatabaseUnavailable: it was refused for good, or not there within ``patience_s``.
    """
    url = engine.url
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
    started = clock()
    said: tuple[str, float] | None = None
    for attempt in range(len(backoff) + 1_000_000):
        try:
            with engine.connect():
                if said is not None:
                    logger.info(
                        "the database at %s takes connections after %.0f s",
                        where,
                        clock() - started,
                    )
                return
        except sa.exc.OperationalError as exc:
            reason = _reason(exc)
            if any(marker in reason for marker in _FOR_GOOD):
                raise DatabaseUnavailable(f"the database at {where} refuses: {reason}") from exc
            waited = clock() - started
            if waited >= patience_s:
                raise DatabaseUnavailable(
                    f"the database at {where} took no connection in {patience_s:.0f} s: {reason}"
                ) from exc
            pause = backoff[min(attempt, len(backoff) - 1)]
            if said is None or said[0] != reason or clock() - said[1] >= WAITING_LINE_EVERY_S:
                logger.warning(
                    "waiting for the database at %s (%s); waited %.0f s, giving up after %.0f s",
                    where,
                    reason,
                    waited,
                    patience_s,
                )
                said = (reason, clock())
            sleep(pause)


def upgrade_database(engine: sa.Engine, versions_dir: Path, *, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` with the revisions in ``versions_dir``, once it
    takes connections (:func:`wait_for_database`).

    Args:
        engine: the service's engine.
        versions_dir: the service's ``migrations/versions`` folder.
        revision: the target revision.
    """
    from alembic import command
    from alembic.config import Config

    if engine.dialect.name == "postgresql":
        wait_for_database(engine)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "_alembic"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions_dir))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # NOTE: every replica may migrate as it starts (the chart's init containers); the
            # lock makes them take turns, and the later ones find the schema at head.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def migrate_command(service: str, migrate: Callable[[], str]) -> int:
    """The whole of ``python -m flotilla.<service> migrate`` around ``migrate`` (which returns
    the line to print when done): 0, or 1 with one line saying why the database never came.
    """
    import sys

    try:
        done = migrate()
    except DatabaseUnavailable as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 1
    print(done)
    return 0


def migrate_database(database_url: str, versions_dir: Path) -> None:
    """Bring the database at ``database_url`` to head with a service's revisions (the whole
    of ``python -m flotilla.<service> migrate`` for a service that seeds nothing)."""
    from ._database import make_engine

    engine = make_engine(database_url, trace=False)
    try:
        upgrade_database(engine, versions_dir)
    finally:
        engine.dispose()
