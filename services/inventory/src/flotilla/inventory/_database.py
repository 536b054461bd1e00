"""Schema migrations and the demo catalogue."""

from __future__ import annotations

from pathlib import Path

from flotilla.core import make_engine, session_factory, upgrade_database

from ._products import seed_catalogue

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def migrate(database_url: str) -> int:
    """Bring the schema to head and add the missing demo products.

    Safe to run again: existing products (and their stock) are left as they are.

    Args:
        database_url: ``sqlite:///var/inventory.db`` or a PostgreSQL URL.

    Returns:
        How many demo products were added.
    """
    engine = make_engine(database_url, trace=False)
    try:
        upgrade_database(engine, VERSIONS)
        with session_factory(engine).begin() as session:
            return seed_catalogue(session=session)
    finally:
        engine.dispose()
