"""Fixtures of the inventory tests: a migrated inventory-api on SQLite and on PostgreSQL.

``database_url`` (tests/conftest.py) is parametrized, so every test that uses these fixtures
runs once against a SQLite file and once against a fresh PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flotilla.inventory import InventorySettings, create_app, migrate


@dataclass(frozen=True)
class Shelf:
    """What the database says about one product, read behind the API's back."""

    available: int
    reserved: int


class Stockroom:
    """Direct access to the inventory database, to set up stock and check the books."""

    def __init__(self, database_url: str) -> None:
        self.engine = sa.create_engine(database_url)

    def set_available(self, sku: str, available: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE products SET available = :a, reserved = 0 WHERE sku = :s"),
                {"a": available, "s": sku},
            )

    def shelf(self, sku: str) -> Shelf:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT available, reserved FROM products WHERE sku = :s"), {"s": sku}
            ).one()
        return Shelf(available=row.available, reserved=row.reserved)

    def held_units(self, sku: str) -> int:
        """Units of ``sku`` in reservations still held (must equal ``reserved``)."""
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT COALESCE(SUM(i.quantity), 0) FROM reservation_items i "
                        "JOIN reservations r ON r.id = i.reservation_id "
                        "WHERE r.status = 'held' AND i.sku = :s"
                    ),
                    {"s": sku},
                ).scalar_one()
            )

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` with the schema at head and the demo catalogue seeded."""
    migrate(database_url)
    return database_url


@pytest.fixture
def stockroom(migrated_url: str) -> Iterator[Stockroom]:
    room = Stockroom(migrated_url)
    yield room
    room.close()


@pytest.fixture
def inventory(migrated_url: str) -> Iterator[TestClient]:
    """inventory-api in-process (FastAPI's TestClient) on a migrated database."""
    app = create_app(InventorySettings(database_url=migrated_url))
    with TestClient(app) as client:
        yield client
