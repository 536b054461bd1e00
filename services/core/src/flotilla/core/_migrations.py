"""Running a service's Alembic migrations (needs ``flotilla-core[database]``)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

#: The PostgreSQL advisory lock key migrations take (one per database; any fixed 64-bit number).
MIGRATION_LOCK = 0x466C6F74696C6C61  # "Flotilla"


def upgrade_database(engine: sa.Engine, versions_dir: Path, *, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` with the revisions in ``versions_dir``.

    Args:
        engine: the service's engine.
        versions_dir: the service's ``migrations/versions`` folder.
        revision: the target revision.
    """
    from alembic import command
    from alembic.config import Config

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


def migrate_database(database_url: str, versions_dir: Path) -> None:
    """Bring the database at ``database_url`` to head with a service's revisions (the whole
    of ``python -m flotilla.<service> migrate`` for a service that seeds nothing)."""
    from ._database import make_engine

    engine = make_engine(database_url, trace=False)
    try:
        upgrade_database(engine, versions_dir)
    finally:
        engine.dispose()
