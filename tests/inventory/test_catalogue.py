"""The catalogue, migrations, health and the command line, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from flotilla.inventory import DEMO_CATALOGUE, InventorySettings, create_app, migrate
from flotilla.inventory.__main__ import main
from flotilla.inventory._products import DEMO_STOCK
from tests.inventory.conftest import Stockroom
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.integration


def test_catalogue_is_seeded_with_plenty_of_stock(inventory: TestClient) -> None:
    answer = inventory.get("/products")
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [item["sku"] for item in items] == sorted(sku for sku, _, _ in DEMO_CATALOGUE)
    for item in items:
        assert set(item) == {"sku", "name", "price_cents", "available"}
        assert item["name"] and item["price_cents"] > 0
        assert item["available"] >= 10_000


def test_one_product_is_answered_by_its_sku(inventory: TestClient) -> None:
    answer = inventory.get("/products/FLT-KAYAK")
    assert answer.status_code == 200
    assert answer.json()["sku"] == "FLT-KAYAK"
    assert answer.json()["name"] == "Sea kayak"


def test_migrating_again_adds_nothing_and_never_resets_stock(
    migrated_url: str, inventory: TestClient, stockroom: Stockroom
) -> None:
    body = {"reference": "r1", "items": [{"sku": "FLT-KAYAK", "quantity": 5}]}
    assert inventory.post("/reservations", json=body).status_code == 201
    before = stockroom.shelf("FLT-KAYAK")
    assert migrate(migrated_url) == 0
    assert stockroom.shelf("FLT-KAYAK") == before
    assert len(inventory.get("/products").json()["items"]) == len(DEMO_CATALOGUE)


def test_unknown_product_is_a_404_problem_naming_the_sku(inventory: TestClient) -> None:
    answer = inventory.get("/products/no-such-thing")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["sku"] == "no-such-thing"
    assert problem["status"] == 404
    assert problem["instance"] == "/products/no-such-thing"
    assert problem["errors"] == [{"field": "sku", "message": "no product has sku no-such-thing"}]


def test_readiness_fails_until_the_database_is_migrated(database_url: str) -> None:
    """A fresh, unmigrated database: alive but not ready; after migrate: ready."""
    app = create_app(InventorySettings(database_url=database_url))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        unready = client.get("/readyz")
        assert unready.status_code == 503
        assert unready.json()["checks"]["database"]["ok"] is False
        migrate(database_url)
        assert client.get("/readyz").status_code == 200


def test_a_sqlite_database_gets_its_folder_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "inventory.db"
    assert migrate(f"sqlite:///{path}") == len(DEMO_CATALOGUE)
    assert path.exists()


def test_command_line_migrates_then_serves_the_catalogue(database_url: str) -> None:
    """``python -m flotilla.inventory migrate`` then ``api``, as the supervisor runs them."""
    port = free_port()
    env = {
        **os.environ,
        "FLOTILLA_INVENTORY_DATABASE_URL": database_url,
        "FLOTILLA_INVENTORY_PORT": str(port),
        "OTEL_TRACES_EXPORTER": "none",
    }
    command = [sys.executable, "-m", "flotilla.inventory"]
    migrated = subprocess.run([*command, "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    assert f"{len(DEMO_CATALOGUE)} demo products added" in migrated.stdout

    api = subprocess.Popen([*command, "api"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz").status_code == 200
        items = httpx.get(f"{base}/products").json()["items"]
        assert len(items) == len(DEMO_CATALOGUE)
    finally:
        api.send_signal(signal.SIGTERM)
        _, stderr = api.communicate(timeout=20)
    # NOTE: uvicorn re-raises SIGTERM once it has shut down gracefully, so -SIGTERM is clean too
    assert api.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_replicas_migrating_at_once_take_turns(database_url: str) -> None:
    """Eight migrations of a fresh database released at the same instant, as the chart's init
    containers run when replicas start together: all succeed, the catalogue is seeded once."""
    start = threading.Barrier(8)

    def migrate_when_released() -> int:
        start.wait()
        return migrate(database_url)

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda _: migrate_when_released(), range(8)))
    assert sorted(added) == [0] * 7 + [len(DEMO_CATALOGUE)]
    app = create_app(InventorySettings(database_url=database_url))
    with TestClient(app) as client:
        items = client.get("/products").json()["items"]
    assert len(items) == len(DEMO_CATALOGUE)
    assert {item["available"] for item in items} == {DEMO_STOCK}
