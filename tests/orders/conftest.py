"""orders-api in front of a real inventory-api served over HTTP on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import httpx
import pytest
from fastapi.testclient import TestClient

from flotilla.core import broker_from_url
from flotilla.inventory import InventorySettings
from flotilla.inventory import create_app as create_inventory
from flotilla.inventory import migrate as migrate_inventory
from flotilla.orders import OrdersSettings, create_app, migrate
from tests.support.ports import free_port
from tests.support.servers import serve_in_thread


@pytest.fixture
def inventory_url(tmp_path: Path) -> Iterator[str]:
    """The real inventory-api (SQLite) on a free port."""
    url = f"sqlite:///{tmp_path}/inventory.db"
    migrate_inventory(url)
    with serve_in_thread(create_inventory(InventorySettings(database_url=url))) as base:
        yield base


@dataclass
class Orders:
    client: TestClient
    settings: OrdersSettings
    inventory: httpx.Client

    def stock(self, sku: str) -> int:
        return int(self.inventory.get(f"/products/{sku}").json()["available"])


def orders_settings(database_url: str, inventory_url: str, broker_url: str) -> OrdersSettings:
    return OrdersSettings(
        database_url=database_url,
        inventory_url=inventory_url,
        broker_url=broker_url,
        payment_latency_ms=10,
        relay_interval_ms=50,
        fulfil_min_backoff_ms=50,
        fulfil_max_backoff_ms=100,
    )


@pytest.fixture
def unreachable_broker_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def orders(database_url: str, inventory_url: str, unreachable_broker_url: str) -> Iterator[Orders]:
    """orders-api on SQLite or PostgreSQL; its relay is off (tests drive the outbox)."""
    migrate(database_url)
    settings = orders_settings(database_url, inventory_url, unreachable_broker_url)
    broker: dramatiq.Broker = broker_from_url(unreachable_broker_url)
    with (
        TestClient(create_app(settings, broker=broker, relay=False)) as client,
        httpx.Client(base_url=inventory_url) as inventory,
    ):
        yield Orders(client, settings, inventory)
