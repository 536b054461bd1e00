"""Placing an order through the edge and waiting for its whole trace (shared by e2e tests)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from tests.e2e.conftest import Platform
from tests.support.waiting import wait_for

ORDER = {"customer_email": "grace@example.com", "items": [{"sku": "FLT-KAYAK", "quantity": 1}]}
SERVICES = {"edge", "orders-api", "inventory-api", "orders-worker", "notifications-worker"}


def fulfilled(client: httpx.Client, order_id: str) -> bool:
    return bool(client.get(f"/api/orders/{order_id}").json()["status"] == "fulfilled")


def complete_trace(platform: Platform, trace_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{platform.console}/api/traces/{trace_id}")
    if answer.status_code != 200:
        return None
    trace: dict[str, Any] = answer.json()
    services = {s["service"] for s in trace["spans"]}
    names = {s["name"] for s in trace["spans"]}
    ids = {s["span_id"] for s in trace["spans"]}
    # NOTE: each process exports in its own batches, so spans arrive out of order; the trace
    # is complete once every service is there and every parent has arrived.
    linked = all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
    # NOTE: and every call has its answer's side: an HTTP CLIENT span its SERVER span, a
    # PRODUCER span its CONSUMER (a callee's batch may come seconds after the caller's).
    parents = {s["parent_span_id"] for s in trace["spans"]}
    calls = [
        s
        for s in trace["spans"]
        if s["kind"] == "PRODUCER"
        or (s["kind"] == "CLIENT" and "http.request.method" in s.get("attributes", {}))
    ]
    answered = all(s["span_id"] in parents for s in calls)
    complete = services >= SERVICES and "smtp.send" in names and linked and answered
    return trace if complete else None


def traced_order(platform: Platform) -> tuple[str, dict[str, Any]]:
    """Place one order, wait until it is fulfilled and its trace complete; (trace id, trace)."""
    with platform.client() as client:
        answer = client.post("/api/orders", json=ORDER)
        assert answer.status_code == 202, answer.text
        order_id, trace_id = answer.json()["id"], answer.headers["x-trace-id"]
        try:
            wait_for(lambda: fulfilled(client, order_id), timeout_s=30)
        except AssertionError:
            order = client.get(f"/api/orders/{order_id}").json()
            raise AssertionError(f"order {order_id} not fulfilled in 30 s: {order}") from None
    try:
        trace = wait_for(lambda: complete_trace(platform, trace_id), timeout_s=30)
    except AssertionError:
        raise AssertionError(
            f"trace {trace_id} incomplete after 30 s: {_missing(platform, trace_id)}"
        ) from None
    return trace_id, trace


def _missing(platform: Platform, trace_id: str) -> str:
    """What an incomplete trace lacks, for the failure message."""
    answer = httpx.get(f"{platform.console}/api/traces/{trace_id}")
    if answer.status_code != 200:
        return f"the console answers {answer.status_code}"
    spans = answer.json()["spans"]
    ids = {s["span_id"] for s in spans}
    parents = {s["parent_span_id"] for s in spans}
    return str(
        {
            "services missing": sorted(SERVICES - {s["service"] for s in spans}),
            "parents missing": sorted({s["parent_span_id"] for s in spans} - ids - {None}),
            "unanswered calls": sorted(
                s["name"]
                for s in spans
                if s["kind"] in ("PRODUCER", "CLIENT")
                and s["span_id"] not in parents
                and (s["kind"] == "PRODUCER" or "http.request.method" in s.get("attributes", {}))
            ),
            "smtp.send": any(s["name"] == "smtp.send" for s in spans),
        }
    )


def start_burst(platform: Platform, orders: int) -> subprocess.Popen[bytes]:
    """``flotilla load`` through the platform's edge, in the background (8 at a time)."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "flotilla.cli", "load"),
            *("--orders", str(orders), "--concurrency", "8", "--edge", platform.edge),
            *("--api-key-file", str(platform.var_dir / "local" / "api-key")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
