"""Every process of the running platform serves its metrics: scraped after a few orders, as
Prometheus would scrape them, at the URLs ``flotilla status --json`` lists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict

import httpx
import pytest

from tests.core.test_metrics import samples
from tests.e2e.conftest import Platform
from tests.e2e.orders import ORDER, fulfilled
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

ORDERS = 5
#: What would make a label unbounded: an id (UUIDs, long hex, long numbers) or a raw path.
UNBOUNDED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|[0-9a-f]{16,}|\d{6,}|/api/orders/[^{]")


def _scrapes(platform: Platform) -> dict[str, list[str]]:
    """Each kind of process (replicas together) -> the text of its scrapes."""
    shown = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "status", "--json", "--var-dir",
         str(platform.var_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    processes = json.loads(shown.stdout)["processes"]
    texts: dict[str, list[str]] = defaultdict(list)
    for process in processes:
        if process["pid"] and process.get("metrics_url"):
            kind = (process["pool"] and f"{process['pool']}-worker") or process["name"]
            texts[kind].append(httpx.get(process["metrics_url"], timeout=10).text)
    return texts


def _total(texts: list[str], name: str, **labels: str) -> float:
    return sum(samples(text, name, **labels) for text in texts)


def test_each_process_serves_request_job_and_database_metrics_after_a_few_orders(
    platform: Platform,
) -> None:
    # NOTE: the counts are summed over the replicas running at the scrape; a replica that an
    # earlier test's orders started and that retires meanwhile takes its counts with it, so
    # the orders go to pools at rest (one replica each)
    def rested() -> bool:
        shown = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "status", "--json", "--var-dir",
             str(platform.var_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return all(pool["replicas"] == 1 for pool in json.loads(shown.stdout)["pools"])

    wait_for(rested, timeout_s=60)
    with platform.client() as client:
        placed = [client.post("/api/orders", json=ORDER) for _ in range(ORDERS)]
        assert [answer.status_code for answer in placed] == [202] * ORDERS
        for answer in placed:
            wait_for(lambda answer=answer: fulfilled(client, answer.json()["id"]), timeout_s=60)

    def counted() -> dict[str, list[str]] | None:
        texts = _scrapes(platform)
        mails = _total(
            texts.get("notifications-worker", []),
            "messaging_process_duration_seconds_count",
            messaging_destination_name="notifications",
        )
        return texts if mails >= ORDERS else None

    texts = wait_for(counted, timeout_s=30)
    assert {"edge", "orders-api", "inventory-api", "payments-api"} <= set(texts)
    assert {"orders-worker", "notifications-worker"} <= set(texts)

    server = "http_server_request_duration_seconds_count"
    post = {"http_request_method": "POST"}
    assert _total(texts["orders-api"], server, http_route="/orders", **post) >= ORDERS
    assert _total(texts["inventory-api"], server, http_route="/reservations", **post) >= ORDERS
    assert _total(texts["payments-api"], server, http_route="/charges", **post) >= ORDERS
    assert _total(texts["edge"], server, **post) >= ORDERS
    assert _total(texts["edge"], "edge_requests_total", method="POST") >= ORDERS

    orders = {"messaging_destination_name": "orders"}
    assert _total(texts["orders-api"], "messaging_client_sent_messages_total", **orders) >= ORDERS
    worker = texts["orders-worker"]
    assert _total(worker, "messaging_client_consumed_messages_total", **orders) >= ORDERS
    assert _total(worker, "messaging_dramatiq_queue_wait_duration_seconds_count", **orders) >= (
        ORDERS
    )
    assert _total(worker, "messaging_dramatiq_messages_in_progress", **orders) == 0
    client_calls = "http_client_request_duration_seconds_count"
    assert _total(worker, client_calls, http_request_method="POST") >= 3 * ORDERS
    database = "db_client_operation_duration_seconds_count"
    assert _total(texts["orders-api"], database, db_namespace="orders") > 0
    assert _total(texts["inventory-api"], database, db_namespace="inventory") > 0

    for kind, scraped in texts.items():
        for text in scraped:
            for line in text.splitlines():
                if line.startswith("#") or "{" not in line or line.startswith("target_info"):
                    continue
                labels = line[line.index("{") : line.rindex("}")]
                assert not UNBOUNDED.search(labels), f"{kind}: an unbounded label: {line}"
