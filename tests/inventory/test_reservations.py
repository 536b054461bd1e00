"""Reserving, committing and releasing stock over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.inventory.conftest import Shelf, Stockroom

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
    assert _reserve(inventory, "b", ("FLT-COMPASS", 4)).json()["status"] == "released"


def test_settling_an_unknown_reservation_is_a_404_problem(inventory: TestClient) -> None:
    for action in ("commit", "release"):
        problem = _problem(inventory.post(f"/reservations/nope/{action}"), 404)
        assert problem["errors"][0]["field"] == "id"
        assert problem["instance"] == f"/reservations/nope/{action}"
