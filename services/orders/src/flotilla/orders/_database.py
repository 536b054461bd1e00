from __future__ import annotations

from pathlib import Path

from flotilla.core import make_engine, upgrade_database

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def migrate(database_url: str) -> None:
    """Bring the orders schema to head."""
    engine = make_engine(database_url, trace=False)
    try:
        upgrade_database(engine, VERSIONS)
    finally:
        engine.dispose()
