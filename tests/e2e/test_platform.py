"""End to end: orders placed through the edge are fulfilled, traced and mailed.

Everything is real: ``flotilla up`` starts every service as a process, on free ports, with a
real Redis; the test is a client speaking HTTP to the edge and the console.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.orders import ORDER, SERVICES, complete_trace, fulfilled, start_burst
from tests.support.redis_server import ThrowawayRedis
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_an_order_goes_through_five_processes_in_one_trace(platform: Platform) -> None:
    with platform.client() as client:
        answer = client.post("/api/orders", json=ORDER)
        assert answer.status_code == 202
        order = answer.json()
        trace_id = answer.headers["x-trace-id"]
        wait_for(lambda: fulfilled(client, order["id"]), timeout_s=30)

    trace = wait_for(lambda: complete_trace(platform, trace_id), timeout_s=30)
    spans = trace["spans"]
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert len(roots) == 1 and roots[0]["service"] == "edge"
    # a healthy order is not red anywhere (the edge's first rate-limit call once was: NOSCRIPT)
    assert [
        (s["service"], s["name"], s.get("status_message"), s["attributes"])
        for s in spans
        if s["status"] == "ERROR"
    ] == []
    assert all(s["parent_span_id"] in by_id for s in spans if s is not roots[0]), (
        "a span's parent is missing: the chain is broken"
    )
    for queue in ("orders", "notifications"):
        (publish,) = [s for s in spans if s["name"] == f"publish {queue}"]
        (process,) = [s for s in spans if s["name"] == f"process {queue}"]
        assert publish["kind"] == "PRODUCER"
        assert process["kind"] == "CONSUMER"
        assert process["parent_span_id"] == publish["span_id"]
        assert process["attributes"]["messaging.dramatiq.queue_wait_ms"] >= 0
    assert (
        by_id[next(s["span_id"] for s in spans if s["name"] == "process orders")]["service"]
        == "orders-worker"
    )

    mails = wait_for(
        lambda: [
            m for m in (platform.var_dir / "mail").glob("*.eml") if order["id"] in m.read_text()
        ],
        timeout_s=30,
    )
    assert "grace@example.com" in mails[0].read_text()


def test_bad_requests_get_problems_without_tracebacks(platform: Platform) -> None:
    anonymous = httpx.post(f"{platform.edge}/api/orders", json=ORDER)
    with platform.client() as client:
        malformed = client.post(
            "/api/orders",
            content=b'{"customer_email": ',
            headers={"Content-Type": "application/json"},
        )
        unknown = client.post(
            "/api/orders",
            json={"customer_email": "a@example.com", "items": [{"sku": "NO-SUCH", "quantity": 1}]},
        )
    assert anonymous.status_code == 401
    assert malformed.status_code in (400, 422)
    assert unknown.status_code in (404, 409, 422)
    assert unknown.json()["sku"] == "NO-SUCH"
    for answer in (anonymous, malformed, unknown):
        assert answer.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in answer.text
        assert "x-trace-id" in answer.headers


def test_the_trace_reads_as_a_tree_in_the_terminal(platform: Platform) -> None:
    with platform.client() as client:
        answer = client.post("/api/orders", json=ORDER)
    trace_id = answer.headers["x-trace-id"]
    wait_for(lambda: complete_trace(platform, trace_id), timeout_s=30)
    shown = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "traces", trace_id, "--console", platform.console],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    for service in SERVICES:
        assert service in shown
    assert "waited" in shown  # queue waits are shown on consumer spans


def test_load_places_orders_and_reports_percentiles(platform: Platform) -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "flotilla.cli",
            "load",
            "--orders",
            "20",
            "--concurrency",
            "4",
            "--edge",
            platform.edge,
            "--api-key-file",
            str(platform.var_dir / "local" / "api-key"),
            "--wait",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "202: 20" in shown.stdout
    assert "latency p95" in shown.stdout
    assert "fulfilled" in shown.stdout and "20 of 20" in shown.stdout


def test_orders_accepted_during_a_broker_outage_are_fulfilled_after_it(
    platform: Platform, redis_server: ThrowawayRedis
) -> None:
    """Stop the broker, place orders (202), start it again: every one is fulfilled."""
    redis_server.stop()
    try:
        with platform.client() as client:
            answers = [client.post("/api/orders", json=ORDER) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]
        time.sleep(2)  # the relay tries and keeps them in the outbox
        with platform.client() as client:
            assert all(
                client.get(f"/api/orders/{a.json()['id']}").json()["status"] == "accepted"
                for a in answers
            )
    finally:
        redis_server.start()
    with platform.client() as client:
        for answer in answers:
            wait_for(lambda a=answer: fulfilled(client, a.json()["id"]), timeout_s=90)


def pool_status(platform: Platform) -> dict[str, dict[str, Any]]:
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "flotilla.cli",
            "status",
            "--json",
            "--var-dir",
            str(platform.var_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return {pool["name"]: pool for pool in json.loads(shown.stdout)["pools"]}


def test_a_burst_scales_the_orders_pool_up_and_back_down_after_the_window(
    platform: Platform,
) -> None:
    """The operator's policy drives the local pools: more workers for a burst, then fewer.

    The payment provider is slowed (1 s a charge) while the burst runs: each order's message
    is published as soon as the order is stored, and a worker that keeps pace with the burst
    never has a backlog to scale on; with a slow provider, one worker falls behind as it would
    under a real burst."""
    # NOTE: from where the pool rests: an earlier test's orders (the outage's, once the broker
    # is back) may have grown it, and it shrinks only after its 5 s window
    before = wait_for(
        lambda: (p := pool_status(platform)["orders-worker"])["replicas"] == 1 and p,
        timeout_s=60,
    )
    assert before["min"] == 1
    assert pool_status(platform)["notifications-worker"]["queue"] == "notifications"
    faults = f"{platform.url('payments')}/faults"
    usual = httpx.get(faults, timeout=10).raise_for_status().json()
    httpx.put(faults, json={**usual, "latency_ms": 1000}, timeout=10).raise_for_status()
    burst = start_burst(platform, 80)
    try:
        grown = wait_for(
            lambda: (p := pool_status(platform)["orders-worker"])["replicas"] > 1 and p,
            timeout_s=60,
        )
    finally:
        httpx.put(faults, json=usual, timeout=10).raise_for_status()
        burst.wait(120)
    assert grown["desired"] <= grown["max"] == 3
    assert any("orders-worker scale-up" in line for line in platform.log)
    wait_for(lambda: pool_status(platform)["orders-worker"]["replicas"] == 1, timeout_s=120)
    assert any("orders-worker scale-down" in line for line in platform.log)


def test_the_start_shows_each_process_and_the_banner_not_library_lines(
    platform: Platform,
) -> None:
    """``flotilla up`` without ``--verbose``: a line as each process is ready, the banner with
    the console's pages, and none of Alembic's or uvicorn's own INFO lines (about 80 of them
    before)."""
    started = platform.log[: platform.log.index("flotilla: platform ready") + 1]
    chatter = [line for line in started if '"logger": "alembic' in line or "uvicorn.error" in line]
    assert chatter == []
    for name in ("console", "inventory-api", "payments-api", "orders-api", "edge"):
        assert any(line.startswith(f"flotilla: {name} ready (pid ") for line in started), name
    banner = "\n".join(started)
    assert f"{platform.console}/pools" in banner and f"{platform.console}/ " in banner + " "
    assert f"{platform.console}/services" in banner
