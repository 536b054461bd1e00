"""Reserving, committing and releasing stock over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flotilla.inventory import InventorySettings, create_app
from tests.inventory.conftest import Shelf, Stockroom
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "errors"}


def _reserve(client: TestClient, reference: str, *lines: tuple[str, int]) -> Any:
    items = [{"sku": sku, "quantity": quantity} for sku, quantity in lines]
    return client.post("/reservations", json={"reference": reference, "items": items})


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert set(problem) >= PROBLEM_MEMBERS
    assert problem["status"] == status
    return problem


def test_a_reservation_holds_every_line(inventory: TestClient, stockroom: Stockroom) -> None:
    paddles, vests = stockroom.shelf("FLT-PADDLE"), stockroom.shelf("FLT-VEST")
    answer = _reserve(inventory, "order-1", ("FLT-PADDLE", 2), ("FLT-VEST", 1))
    assert answer.status_code == 201
    body = answer.json()
    assert body["reference"] == "order-1"
    assert body["status"] == "held"
    assert body["amount_cents"] == 2 * 14_900 + 7_900
    assert body["items"] == [
        {"sku": "FLT-PADDLE", "quantity": 2},
        {"sku": "FLT-VEST", "quantity": 1},
    ]
    assert stockroom.shelf("FLT-PADDLE") == Shelf(paddles.available - 2, 2)
    assert stockroom.shelf("FLT-VEST") == Shelf(vests.available - 1, 1)
    assert inventory.get("/products/FLT-PADDLE").json()["available"] == paddles.available - 2


def test_the_same_reference_answers_the_same_reservation_without_reserving_twice(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    before = stockroom.shelf("FLT-PADDLE")
    first = _reserve(inventory, "order-1", ("FLT-PADDLE", 2))
    again = _reserve(inventory, "order-1", ("FLT-PADDLE", 2))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert stockroom.shelf("FLT-PADDLE") == Shelf(before.available - 2, 2)


def test_lines_naming_the_same_sku_are_summed(inventory: TestClient, stockroom: Stockroom) -> None:
    before = stockroom.shelf("FLT-VEST")
    answer = _reserve(inventory, "dup", ("FLT-VEST", 2), ("FLT-VEST", 3))
    assert answer.status_code == 201
    assert answer.json()["items"] == [{"sku": "FLT-VEST", "quantity": 5}]
    assert stockroom.shelf("FLT-VEST") == Shelf(before.available - 5, 5)


def test_one_short_line_reserves_nothing_and_names_the_sku(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    stockroom.set_available("FLT-LANTERN", 3)
    drybags = stockroom.shelf("FLT-DRYBAG")
    answer = _reserve(inventory, "big", ("FLT-DRYBAG", 1), ("FLT-LANTERN", 4))
    problem = _problem(answer, 409)
    assert problem["sku"] == "FLT-LANTERN"
    assert problem["errors"][0]["field"] == "items.1.quantity"
    assert stockroom.shelf("FLT-DRYBAG") == drybags
    assert stockroom.shelf("FLT-LANTERN") == Shelf(3, 0)
    # the reference was not used up by the refusal
    assert _reserve(inventory, "big", ("FLT-LANTERN", 3)).status_code == 201
    assert stockroom.shelf("FLT-LANTERN") == Shelf(0, 3)


def test_summed_duplicate_lines_can_be_short_together(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    stockroom.set_available("FLT-COMPASS", 5)
    problem = _problem(_reserve(inventory, "x", ("FLT-COMPASS", 3), ("FLT-COMPASS", 3)), 409)
    assert problem["sku"] == "FLT-COMPASS"
    assert problem["errors"][0]["field"] == "items.0.quantity"
    assert stockroom.shelf("FLT-COMPASS") == Shelf(5, 0)


def test_unknown_sku_is_a_422_problem_naming_it_and_reserves_nothing(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    before = stockroom.shelf("FLT-KAYAK")
    answer = _reserve(inventory, "x", ("FLT-KAYAK", 1), ("no-such", 1))
    problem = _problem(answer, 422)
    assert problem["sku"] == "no-such"
    assert problem["errors"][0]["field"] == "items.1.sku"
    assert stockroom.shelf("FLT-KAYAK") == before


def test_malformed_reservations_are_problems_naming_the_field(inventory: TestClient) -> None:
    zero = inventory.post(
        "/reservations", json={"reference": "r", "items": [{"sku": "FLT-KAYAK", "quantity": 0}]}
    )
    assert _problem(zero, 422)["errors"][0]["field"] == "items.0.quantity"
    empty = inventory.post("/reservations", json={"reference": "r", "items": []})
    assert _problem(empty, 422)["errors"][0]["field"] == "items"
    no_reference = inventory.post("/reservations", json={"items": [{"sku": "A", "quantity": 1}]})
    assert _problem(no_reference, 422)["errors"][0]["field"] == "reference"
    not_json = inventory.post(
        "/reservations", content=b"{", headers={"content-type": "application/json"}
    )
    assert _problem(not_json, 400)["errors"][0]["field"] == "body"


def test_commit_takes_the_units_off_the_shelf_once(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    before = stockroom.shelf("FLT-COMPASS")
    held = _reserve(inventory, "a", ("FLT-COMPASS", 3)).json()
    first = inventory.post(f"/reservations/{held['id']}/commit")
    again = inventory.post(f"/reservations/{held['id']}/commit")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "committed"
    assert first.json()["id"] == held["id"]
    assert stockroom.shelf("FLT-COMPASS") == Shelf(before.available - 3, 0)

    refused = _problem(inventory.post(f"/reservations/{held['id']}/release"), 409)
    assert "committed" in refused["detail"]
    assert stockroom.shelf("FLT-COMPASS") == Shelf(before.available - 3, 0)


def test_release_puts_the_units_back_once(inventory: TestClient, stockroom: Stockroom) -> None:
    before = stockroom.shelf("FLT-COMPASS")
    held = _reserve(inventory, "b", ("FLT-COMPASS", 4), ("FLT-VEST", 1)).json()
    first = inventory.post(f"/reservations/{held['id']}/release")
    again = inventory.post(f"/reservations/{held['id']}/release")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "released"
    assert stockroom.shelf("FLT-COMPASS") == before

    refused = _problem(inventory.post(f"/reservations/{held['id']}/commit"), 409)
    assert "released" in refused["detail"]
    assert stockroom.shelf("FLT-COMPASS") == before
    # the reference stays bound to the released reservation
    again = _reserve(inventory, "b", ("FLT-COMPASS", 4), ("FLT-VEST", 1))
    assert again.json()["status"] == "released"


def test_settling_an_unknown_reservation_is_a_404_problem(inventory: TestClient) -> None:
    for action in ("commit", "release"):
        problem = _problem(inventory.post(f"/reservations/nope/{action}"), 404)
        assert problem["errors"][0]["field"] == "id"
        assert problem["instance"] == f"/reservations/nope/{action}"


def test_a_reference_reused_with_other_items_is_a_409_naming_it(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    """A retry of a reserve finds its first reservation; a reference reused for other items is
    refused instead of answering the first reservation's items as if they were asked."""
    before = stockroom.shelf("FLT-PADDLE")
    first = _reserve(inventory, "order-9", ("FLT-PADDLE", 2))
    other = _reserve(inventory, "order-9", ("FLT-PADDLE", 3))
    problem = _problem(other, 409)
    assert problem["type"].endswith("/reference-reused")
    assert problem["reference"] == "order-9"
    assert problem["errors"][0]["field"] == "reference"
    assert "2 x FLT-PADDLE" in problem["detail"]
    split = _reserve(inventory, "order-9", ("FLT-PADDLE", 1), ("FLT-PADDLE", 1))
    assert split.status_code == 200 and split.json()["id"] == first.json()["id"]
    assert stockroom.shelf("FLT-PADDLE") == Shelf(before.available - 2, 2)


def test_a_caller_whose_reserve_timed_out_releases_it_by_reference(
    inventory: TestClient, stockroom: Stockroom
) -> None:
    before = stockroom.shelf("FLT-VEST")
    _reserve(inventory, "lost-answer", ("FLT-VEST", 4))
    released = inventory.post("/reservations/by-reference/lost-answer/release")
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert stockroom.shelf("FLT-VEST") == before
    never = _problem(inventory.post("/reservations/by-reference/never-made/release"), 404)
    assert never["reference"] == "never-made"


@pytest.fixture
def short_lived(migrated_url: str) -> Iterator[TestClient]:
    """inventory-api whose reservations hold for 3 s, swept every 0.1 s."""
    settings = InventorySettings(
        database_url=migrated_url, reservation_ttl_s=3, sweep_interval_s=0.1
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_held_reservations_expire_and_the_sweeper_puts_their_units_back(
    short_lived: TestClient, stockroom: Stockroom
) -> None:
    """Twenty reservations nobody settles (a client that crashed after reserving): once
    their TTL passes every unit is back on the shelf, nothing is reserved or held."""
    before = stockroom.shelf("FLT-DRYBAG")
    made = [_reserve(short_lived, f"leak-{i}", ("FLT-DRYBAG", 3)).json() for i in range(20)]
    assert all(m["status"] == "held" and m["expires_at"] for m in made)
    assert stockroom.shelf("FLT-DRYBAG") == Shelf(before.available - 60, 60)
    wait_for(lambda: stockroom.shelf("FLT-DRYBAG") == before, timeout_s=10)
    assert stockroom.held_units("FLT-DRYBAG") == 0
    statuses = {short_lived.get(f"/reservations/{m['id']}").json()["status"] for m in made}
    assert statuses == {"expired"}
    assert short_lived.app.state.sweeper.expired == 20  # type: ignore[attr-defined]


def test_a_late_commit_of_an_expired_reservation_is_refused_and_takes_nothing(
    migrated_url: str, stockroom: Stockroom
) -> None:
    """Past its expiry, before any sweep: the commit expires it (409), a release is fine."""
    settings = InventorySettings(
        database_url=migrated_url, reservation_ttl_s=0.2, sweep_interval_s=0
    )
    before = stockroom.shelf("FLT-LANTERN")
    with TestClient(create_app(settings)) as client:
        held = _reserve(client, "slow-order", ("FLT-LANTERN", 2)).json()
        time.sleep(0.3)
        assert stockroom.shelf("FLT-LANTERN") == Shelf(before.available - 2, 2)  # not swept
        refused = _problem(client.post(f"/reservations/{held['id']}/commit"), 409)
        assert stockroom.shelf("FLT-LANTERN") == before  # the late commit expired it
        released = client.post(f"/reservations/{held['id']}/release")
    assert "expired" in refused["detail"] and refused["reservation_status"] == "expired"
    assert released.status_code == 200 and released.json()["status"] == "expired"
    assert stockroom.shelf("FLT-LANTERN") == before


def test_renewing_extends_a_hold_and_takes_back_a_lapsed_one_while_stock_lasts(
    migrated_url: str, stockroom: Stockroom
) -> None:
    """The owner renews just before it acts: a held reservation gets a new expiry; one that
    lapsed (units back on the shelf) takes them again if they are still there, else 409
    naming the sku; a committed one is answered as it is; a released one cannot be renewed."""
    settings = InventorySettings(
        database_url=migrated_url, reservation_ttl_s=0.3, sweep_interval_s=0.1
    )
    stockroom.set_available("FLT-COMPASS", 5)
    with TestClient(create_app(settings)) as client:
        lapsed = _reserve(client, "lapsed", ("FLT-COMPASS", 3)).json()
        wait_for(lambda: stockroom.shelf("FLT-COMPASS") == Shelf(5, 0))  # lapsed and swept
        renewed = client.post(f"/reservations/{lapsed['id']}/renew")
        assert renewed.status_code == 200 and renewed.json()["status"] == "held"
        assert renewed.json()["expires_at"] > lapsed["expires_at"]
        assert stockroom.shelf("FLT-COMPASS") == Shelf(2, 3)
        wait_for(lambda: stockroom.shelf("FLT-COMPASS") == Shelf(5, 0))  # lapsed again
        thief = _reserve(client, "thief", ("FLT-COMPASS", 4))  # the units go to someone else
        assert thief.status_code == 201
        gone = _problem(client.post(f"/reservations/{lapsed['id']}/renew"), 409)
        assert gone["sku"] == "FLT-COMPASS" and gone["reservation_status"] == "expired"
        assert stockroom.shelf("FLT-COMPASS") == Shelf(1, 4)
        client.post(f"/reservations/{thief.json()['id']}/commit")
        done = _reserve(client, "done", ("FLT-COMPASS", 1)).json()
        client.post(f"/reservations/{done['id']}/commit")
        assert client.post(f"/reservations/{done['id']}/renew").json()["status"] == "committed"
        back = _reserve(client, "back", ("FLT-VEST", 1)).json()
        client.post(f"/reservations/{back['id']}/release")
        released = _problem(client.post(f"/reservations/{back['id']}/renew"), 409)
        assert released["reservation_status"] == "released"
        assert _problem(client.post("/reservations/nope/renew"), 404)
