"""Many clients at once through a real uvicorn server, on SQLite and on PostgreSQL.

Threads start together behind a barrier so their requests really overlap; each test then
checks the books in the database: nothing oversold, nothing reserved twice, no lost update.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from flotilla.inventory import InventorySettings, create_app
from tests.inventory.conftest import Shelf, Stockroom
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

THREADS = 16
REQUESTS_PER_THREAD = 10


@pytest.fixture
def base_url(migrated_url: str) -> Iterator[str]:
    """inventory-api served by a real uvicorn on a free port."""
    with serve_in_thread(create_app(InventorySettings(database_url=migrated_url))) as url:
        yield url


def _together(work: Any, threads: int = THREADS) -> list[Any]:
    """Run ``work(i)`` in ``threads`` threads released at the same instant."""
    barrier = threading.Barrier(threads)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_concurrent_reservations_never_oversell(base_url: str, stockroom: Stockroom) -> None:
    """16 clients x 10 orders of one or two products in random order, far more than stocked.

    Every answer is 201 or 409 (no deadlock, no lock error), and the shelves add up: what is
    left is exactly what was stocked minus what the 201 answers hold.
    """
    stocked = {"FLT-KAYAK": 60, "FLT-PADDLE": 45}
    for sku, units in stocked.items():
        stockroom.set_available(sku, units)

    def orders_of(client_number: int) -> list[list[tuple[str, int]]]:
        rng = random.Random(client_number)  # reproducible demand per client
        orders = []
        for _ in range(REQUESTS_PER_THREAD):
            skus = rng.sample(sorted(stocked), rng.choice([1, 2]))  # both lock orders occur
            orders.append([(sku, rng.randint(1, 3)) for sku in skus])
        return orders

    demand = Counter[str]()
    for client_number in range(THREADS):
        for order in orders_of(client_number):
            demand.update(dict(order))
    assert all(demand[sku] > units for sku, units in stocked.items())  # some must be refused

    def client(client_number: int) -> list[tuple[int, list[tuple[str, int]]]]:
        answers = []
        with httpx.Client(base_url=base_url, timeout=60) as http:
            for n, order in enumerate(orders_of(client_number)):
                body = {
                    "reference": f"race-{client_number}-{n}",
                    "items": [{"sku": sku, "quantity": quantity} for sku, quantity in order],
                }
                answer = http.post("/reservations", json=body)
                if answer.status_code == 409:
                    assert answer.json()["sku"] in stocked
                answers.append((answer.status_code, order))
        return answers

    answers = [answer for batch in _together(client) for answer in batch]
    codes = Counter(code for code, _ in answers)
    assert set(codes) <= {201, 409}, codes
    assert codes[201] > 0 and codes[409] > 0
    sold = Counter[str]()
    for code, order in answers:
        if code == 201:
            sold.update(dict(order))
    for sku, units in stocked.items():
        shelf = stockroom.shelf(sku)
        assert shelf == Shelf(available=units - sold[sku], reserved=sold[sku])
        assert shelf.available >= 0
        assert stockroom.held_units(sku) == sold[sku]


def test_concurrent_requests_for_one_reference_reserve_once(
    base_url: str, stockroom: Stockroom
) -> None:
    """A client retrying the same order in parallel gets one reservation, held once."""
    before = stockroom.shelf("FLT-VEST")
    body = {"reference": "order-42", "items": [{"sku": "FLT-VEST", "quantity": 7}]}

    def attempt(_: int) -> tuple[int, str]:
        answer = httpx.post(f"{base_url}/reservations", json=body, timeout=60)
        return answer.status_code, answer.json()["id"]

    answers = _together(attempt)
    assert sorted(code for code, _ in answers) == [200] * (THREADS - 1) + [201]
    assert len({reservation_id for _, reservation_id in answers}) == 1
    assert stockroom.shelf("FLT-VEST") == Shelf(before.available - 7, 7)


def test_a_commit_racing_a_release_settles_the_reservation_one_way(
    base_url: str, stockroom: Stockroom
) -> None:
    """Half the clients commit, half release: one wins, the others agree or get 409."""
    before = stockroom.shelf("FLT-DRYBAG")
    held = httpx.post(
        f"{base_url}/reservations",
        json={"reference": "settle-race", "items": [{"sku": "FLT-DRYBAG", "quantity": 5}]},
    ).json()

    def settle(i: int) -> tuple[int, str]:
        action = "commit" if i % 2 else "release"
        answer = httpx.post(f"{base_url}/reservations/{held['id']}/{action}", timeout=60)
        return answer.status_code, action

    answers = _together(settle)
    winners = {action for code, action in answers if code == 200}
    losers = {action for code, action in answers if code == 409}
    assert len(winners) == 1 and winners.isdisjoint(losers)
    assert {code for code, _ in answers} <= {200, 409}
    if winners == {"commit"}:
        assert stockroom.shelf("FLT-DRYBAG") == Shelf(before.available - 5, 0)
    else:
        assert stockroom.shelf("FLT-DRYBAG") == before
