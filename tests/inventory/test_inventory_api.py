"""inventory-api over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flotilla.inventory import InventorySettings, create_app, migrate
from tests.support.servers import serve_in_thread


@pytest.fixture
def inventory(database_url: str) -> Iterator[TestClient]:
    migrate(database_url)
    app = create_app(InventorySettings(database_url=database_url))
    with TestClient(app) as client:
        yield client


def _stock(client: TestClient, sku: str) -> int:
    return int(client.get(f"/products/{sku}").json()["available"])


def test_catalogue_is_seeded_with_plenty_of_stock(inventory: TestClient) -> None:
    items = inventory.get("/products").json()["items"]
    assert len(items) >= 5
    assert all(item["available"] >= 10_000 for item in items)


def test_seeding_again_never_resets_stock(database_url: str, inventory: TestClient) -> None:
    inventory.post(
        "/reservations", json={"reference": "r1", "items": [{"sku": "FLT-KAYAK", "quantity": 5}]}
    )
    before = _stock(inventory, "FLT-KAYAK")
    assert migrate(database_url) == 0
    assert _stock(inventory, "FLT-KAYAK") == before


def test_unknown_product_is_a_problem_naming_the_sku(inventory: TestClient) -> None:
    answer = inventory.get("/products/NOPE-1")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["sku"] == "NOPE-1"


def test_reservation_holds_every_line_and_is_idempotent_per_reference(
    inventory: TestClient,
) -> None:
    before = _stock(inventory, "FLT-PADDLE")
    body = {
        "reference": "order-1",
        "items": [{"sku": "FLT-PADDLE", "quantity": 2}, {"sku": "FLT-VEST", "quantity": 1}],
    }
    first = inventory.post("/reservations", json=body)
    again = inventory.post("/reservations", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["status"] == "held"
    assert _stock(inventory, "FLT-PADDLE") == before - 2


def test_one_short_line_reserves_nothing(inventory: TestClient) -> None:
    before = _stock(inventory, "FLT-DRYBAG")
    answer = inventory.post(
        "/reservations",
        json={
            "reference": "big",
            "items": [
                {"sku": "FLT-DRYBAG", "quantity": 1},
                {"sku": "FLT-LANTERN", "quantity": 100_000},
            ],
        },
    )
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["sku"] == "FLT-LANTERN"
    assert problem["errors"][0]["field"] == "items.1.quantity"
    assert _stock(inventory, "FLT-DRYBAG") == before


def test_unknown_sku_in_a_reservation_is_422_naming_it(inventory: TestClient) -> None:
    answer = inventory.post(
        "/reservations",
        json={
            "reference": "x",
            "items": [{"sku": "FLT-KAYAK", "quantity": 1}, {"sku": "NO-SUCH", "quantity": 1}],
        },
    )
    assert answer.status_code == 422
    assert answer.json()["sku"] == "NO-SUCH"
    assert answer.json()["errors"][0]["field"] == "items.1.sku"


def test_commit_and_release_are_idempotent_and_exclusive(inventory: TestClient) -> None:
    before = _stock(inventory, "FLT-COMPASS")
    held = inventory.post(
        "/reservations", json={"reference": "a", "items": [{"sku": "FLT-COMPASS", "quantity": 3}]}
    ).json()
    assert inventory.post(f"/reservations/{held['id']}/commit").json()["status"] == "committed"
    assert inventory.post(f"/reservations/{held['id']}/commit").status_code == 200
    assert inventory.post(f"/reservations/{held['id']}/release").status_code == 409
    assert _stock(inventory, "FLT-COMPASS") == before - 3

    other = inventory.post(
        "/reservations", json={"reference": "b", "items": [{"sku": "FLT-COMPASS", "quantity": 4}]}
    ).json()
    assert inventory.post(f"/reservations/{other['id']}/release").json()["status"] == "released"
    assert inventory.post(f"/reservations/{other['id']}/release").status_code == 200
    assert inventory.post(f"/reservations/{other['id']}/commit").status_code == 409
    assert _stock(inventory, "FLT-COMPASS") == before - 3
    assert inventory.post("/reservations/nope/commit").status_code == 404


def test_malformed_reservation_is_a_problem_naming_the_field(inventory: TestClient) -> None:
    answer = inventory.post(
        "/reservations", json={"reference": "r", "items": [{"sku": "FLT-KAYAK", "quantity": 0}]}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "items.0.quantity"


def test_concurrent_reservations_never_oversell(database_url: str) -> None:
    """64 clients race for 40 units through a real server: exactly 40 units are sold."""
    migrate(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE products SET available = 40 WHERE sku = 'FLT-KAYAK'"))
    engine.dispose()
    app = create_app(InventorySettings(database_url=database_url))
    barrier = threading.Barrier(16)

    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:

        def attempt(i: int) -> int:
            if i < 16:
                barrier.wait()
            body = {"reference": f"race-{i}", "items": [{"sku": "FLT-KAYAK", "quantity": 1}]}
            return client.post("/reservations", json=body).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(attempt, range(64)))
        left = client.get("/products/FLT-KAYAK").json()["available"]
    assert codes.count(201) == 40
    assert codes.count(409) == 24
    assert left == 0
