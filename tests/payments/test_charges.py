"""The payment stand-in keeps a real provider's promise: one charge per Idempotency-Key.

Counted from its own books (``GET /charges/summary``), over real HTTP, on both databases.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def charge(client: httpx.Client, key: str, order_id: str, amount: int = 1_000) -> httpx.Response:
    return client.post(
        "/charges",
        json={"order_id": order_id, "amount_cents": amount},
        headers={"Idempotency-Key": key},
    )


def summary(client: httpx.Client) -> dict[str, Any]:
    counts: dict[str, Any] = client.get("/charges/summary").json()
    return counts


def test_a_repeated_key_answers_the_first_charge_and_charges_nothing_more(
    payments: httpx.Client,
) -> None:
    first = charge(payments, "order-1", "1")
    again = [charge(payments, "order-1", "1") for _ in range(3)]
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert {a.status_code for a in again} == {200}
    assert {a.json()["id"] for a in again} == {first.json()["id"]}
    assert all(a.headers["idempotent-replayed"] == "true" for a in again)
    assert summary(payments) == {
        "charges": 1,
        "orders": 1,
        "orders_charged_more_than_once": 0,
        "refunds": 0,
        "replays": 3,
    }
    assert [
        c["id"] for c in payments.get("/charges", params={"order_id": "1"}).json()["items"]
    ] == [first.json()["id"]]


def test_a_key_reused_for_another_request_is_refused_naming_the_header(
    payments: httpx.Client,
) -> None:
    assert charge(payments, "k", "1", amount=1_000).status_code == 201
    refused = charge(payments, "k", "1", amount=2_000)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "Idempotency-Key"
    missing = payments.post("/charges", json={"order_id": "1", "amount_cents": 5})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "idempotency-key"
    assert summary(payments)["charges"] == 1


def test_sixteen_concurrent_retries_with_one_key_make_one_charge(payments: httpx.Client) -> None:
    base = str(payments.base_url)
    answers: list[httpx.Response] = []
    gate = threading.Barrier(16)

    def retry() -> None:
        with httpx.Client(base_url=base, timeout=20) as client:
            gate.wait()
            answers.append(charge(client, "race", "7"))

    threads = [threading.Thread(target=retry) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [200] * 15 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert summary(payments)["charges"] == 1


def test_injected_failures_refuse_before_charging_and_heal(payments: httpx.Client) -> None:
    assert payments.put("/faults", json={"fail_next": 2}).status_code == 200
    answers = [charge(payments, "flaky", "3") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 201]
    assert answers[0].headers["content-type"] == "application/problem+json"
    assert answers[0].headers["retry-after"] == "1"
    assert summary(payments)["charges"] == 1
    assert payments.get("/faults").json()["fail_next"] == 0


def test_a_lost_reply_made_the_charge_and_the_retry_finds_it(payments: httpx.Client) -> None:
    """The nastiest failure: the provider charged, the caller saw a 503. Retrying with the
    same key is safe: it answers the charge already made."""
    payments.put("/faults", json={"lost_reply_rate": 1.0})
    lost = charge(payments, "ambiguous", "4")
    payments.put("/faults", json={})
    retried = charge(payments, "ambiguous", "4")
    assert lost.status_code == 503
    assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true"
    assert summary(payments)["charges"] == 1


def test_a_refund_happens_once(payments: httpx.Client) -> None:
    made = charge(payments, str(uuid.uuid4()), "5").json()
    first = payments.post(f"/charges/{made['id']}/refund")
    again = payments.post(f"/charges/{made['id']}/refund")
    assert first.json()["status"] == again.json()["status"] == "refunded"
    assert first.json()["refunded_at"] == again.json()["refunded_at"]
    assert summary(payments)["refunds"] == 1
    assert payments.post("/charges/ch_nope/refund").status_code == 404


def test_bad_fault_settings_are_problems_naming_the_field(payments: httpx.Client) -> None:
    answer = payments.put("/faults", json={"failure_rate": 2})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "failure_rate"
