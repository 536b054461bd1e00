from __future__ import annotations

from pathlib import Path

from flotilla.core import migrate_database

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def migrate(database_url: str) -> None:
    """Bring the orders schema to head."""
    migrate_database(database_url, VERSIONS)
