"""Placing orders the way a careful client does, and counting what the platform did with them.

The client gives every order its own ``Idempotency-Key`` and, when an answer does not come or
is an error worth retrying (429, 5xx, a dropped connection), tries again with the same key
until it gets its 202: so each key must end up as exactly one order. The books are then read
from each component's own records: orders (orders-api), stock (inventory's database), charges
(the payment stand-in's ledger), mails (the sink's mailbox and its delivery log), traces (the
console), and compared.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.local_platform import FlotillaUp

SKU = "FLT-DRYBAG"
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class Placed:
    """What the clients saw: each key's order, every answer, and when it came."""

    orders: dict[str, str] = field(default_factory=dict)  # key → order id
    #: order id → the trace of the request that created it (orders accepted at the first try)
    traces: dict[str, str] = field(default_factory=dict)
    answers: list[tuple[float, int | str]] = field(default_factory=list)  # (time, status|error)
    retries: int = 0
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> collections.Counter[Any]:
        return collections.Counter(s for t, s in self.answers if since <= t <= until)


def place_orders(
    platform: FlotillaUp,
    count: int,
    *,
    concurrency: int = 12,
    give_up_after_s: float = 240,
    on_progress: Callable[[int], None] | None = None,
) -> Placed:
    """Place ``count`` orders through the edge, ``concurrency`` clients at a time, each retried
    with its key until accepted (or ``give_up_after_s`` passed)."""
    placed = Placed()
    keys = iter([f"chaos-{uuid.uuid4()}" for _ in range(count)])
    key_lock = threading.Lock()
    body = {"customer_email": "chaos@example.com", "items": [{"sku": SKU, "quantity": 1}]}

    def client() -> None:
        with platform.client(timeout_s=15) as http:
            while True:
                with key_lock:
                    key = next(keys, None)
                if key is None:
                    return
                deadline, pause, first = time.monotonic() + give_up_after_s, 0.2, True
                while True:
                    try:
                        answer = http.post(
                            "/api/orders", json=body, headers={"Idempotency-Key": key}
                        )
                        outcome: int | str = answer.status_code
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                    with placed.lock:
                        placed.answers.append((time.monotonic(), outcome))
                    if outcome == 202:
                        with placed.lock:
                            placed.orders[key] = answer.json()["id"]
                            if first:
                                placed.traces[answer.json()["id"]] = answer.headers["x-trace-id"]
                            done = len(placed.orders)
                        if on_progress:
                            on_progress(done)
                        break
                    if outcome not in RETRY_STATUSES and isinstance(outcome, int):
                        raise AssertionError(f"order refused for good: {outcome} {answer.text}")
                    if time.monotonic() > deadline:
                        placed.gave_up.append(key)
                        break
                    first = False
                    with placed.lock:
                        placed.retries += 1
                    time.sleep(pause * random.uniform(0.5, 1.5))
                    pause = min(2.0, pause * 2)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return placed


def all_orders(platform: FlotillaUp) -> list[dict[str, Any]]:
    """Every order orders-api holds, straight from orders-api (not through the edge)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    # NOTE: as the edge calls it for an operator: every client's orders
    operator = {"X-Client-Id": "key:chaos-books", "X-Client-Scopes": "orders:read orders:admin"}
    with httpx.Client(base_url=platform.url("orders"), timeout=30, headers=operator) as http:
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = http.get("/orders", params=params).json()
            found += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return found


def wait_until_settled(platform: FlotillaUp, expected: int, timeout_s: float = 300) -> list[Any]:
    """Wait until ``expected`` orders exist and none is still accepted or being fulfilled."""
    deadline = time.monotonic() + timeout_s
    while True:
        orders = all_orders(platform)
        pending = [o for o in orders if o["status"] in ("accepted", "fulfilling")]
        if len(orders) >= expected and not pending:
            return orders
        if time.monotonic() > deadline:
            statuses = collections.Counter(o["status"] for o in orders)
            raise AssertionError(
                f"after {timeout_s:.0f} s: {dict(statuses)} of {expected}\n" + platform.tail()
            )
        time.sleep(2)


@dataclass(frozen=True)
class Stock:
    available: int
    reserved: int
    held_reservations: int


def stock(platform: FlotillaUp) -> Stock:
    """The shelf of :data:`SKU` as inventory's own database has it."""
    with sqlite3.connect(platform.var_dir / "inventory.db", timeout=30) as db:
        available, reserved = db.execute(
            "SELECT available, reserved FROM products WHERE sku = ?", (SKU,)
        ).fetchone()
        (held,) = db.execute("SELECT COUNT(*) FROM reservations WHERE status = 'held'").fetchone()
    return Stock(int(available), int(reserved), int(held))


def charges(platform: FlotillaUp) -> dict[str, int]:
    """The payment stand-in's ledger."""
    ledger: dict[str, int] = httpx.get(f"{platform.url('payments')}/charges/summary").json()
    return ledger


def dropped_spans(platform: FlotillaUp) -> int:
    """Spans the platform's processes dropped in the last hour (their exporters' queues were
    full), as they said it to the console."""
    shown = httpx.get(f"{platform.console}/api/services", params={"minutes": 60}, timeout=30)
    return sum(shown.json()["dropped_spans"].values())


@dataclass(frozen=True)
class Mail:
    mailbox: collections.Counter[str]  # order id → mails in the mailbox (one file each)
    deliveries: int  # SMTP deliveries, duplicates included
    duplicated: frozenset[str]  # orders delivered more than once

    @property
    def duplicates(self) -> int:
        return len(self.duplicated)


def _order_of(filed: str) -> str:
    return filed.removeprefix("order-").split("@")[0]


def mail(platform: FlotillaUp) -> Mail:
    folder = platform.var_dir / "mail"
    mailbox = collections.Counter[str]()
    for filed in folder.glob("order-*.eml"):
        mailbox[_order_of(filed.name)] += 1
    # NOTE: the sink makes its folder when it starts and its log at the first delivery
    deliveries = folder / "deliveries.log"
    log = deliveries.read_text().splitlines() if deliveries.exists() else []
    duplicated = frozenset(_order_of(line.split()[-1]) for line in log if " duplicate " in line)
    return Mail(mailbox, len(log), duplicated)


def mailed_but_unmarked(platform: FlotillaUp, worker: str, pid: int) -> set[str]:
    """Orders a SIGKILLed notifications worker (``worker``, process ``pid``) had claimed in the
    mail ledger and the sink had already accepted: the worker died between the server's 250
    and its ``sent`` mark, the one instant in which the next copy mails again (no SMTP client
    can ask the server whether a mail arrived; ``flotilla.notifications._ledger``)."""
    import redis

    from flotilla.notifications import MailLedger

    ledger = MailLedger(platform.redis_url, claim_s=60)
    holder = f"sending {worker} {pid} ".encode()
    try:
        claimed = [
            key.decode().removeprefix(ledger.prefix)
            for key in ledger.redis.scan_iter(match=ledger.prefix + "*", count=1000)
            if (ledger.redis.get(key) or b"").startswith(holder)
        ]
    except redis.RedisError:
        return set()
    finally:
        ledger.close()
    filed = mail(platform).mailbox
    return {order for order in claimed if filed[order]}


def wait_for_mail(platform: FlotillaUp, orders: list[str], timeout_s: float = 120) -> Mail:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = mail(platform)
        if all(seen.mailbox[o] for o in orders) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


@dataclass(frozen=True)
class Traces:
    """What the sampled traces show.

    Attributes:
        checked: traces looked at.
        broken: traces that do not hold the order's whole journey: one edge request as their
            only true root, and the spans of its fulfilment and of its mail (``smtp.send``).
        split: traces the console holds that start anywhere but at the edge: work of an order
            (a retry, a redelivery, a redrive) that escaped into a trace of its own.
        with_lost_spans: traces holding a span whose parent never arrived: that parent was
            in a process killed before it exported it (SIGKILL leaves no time to flush).
    """

    checked: int
    broken: list[str]
    split: list[str]
    with_lost_spans: int


#: root operations a trace of this platform may not start with (all order work starts at
#: the edge's request; the test's own reads, such as GET /charges/summary, do start traces)
NOT_A_ROOT = (
    "publish",
    "process",
    "redrive",
    "smtp",
    "payment.",
    "POST /charges",
    "POST /reservations",
)


#: the spans every order's trace holds besides the edge's root, and the process making each
JOURNEY = {
    "process orders": "orders-worker",
    "process notifications": "notifications-worker",
    "smtp.send": "notifications-worker",
}


def check_traces(
    platform: FlotillaUp, traces: dict[str, str], killed: Iterable[str] = ()
) -> Traces:
    """Look at the traces of the sampled orders (order id → trace id), and for split ones.

    A trace is **broken** when its root is not the edge's request, or part of the journey is
    missing that no SIGKILL explains. A SIGKILLed process takes the spans still in its
    exporter's buffer with it (its work was done, its mail sent, but the spans never left):
    a trace that lacks only spans of a kind of process the test killed (``killed``: process
    names such as ``notifications-worker-3``), or holds a span whose parent never arrived, is
    counted as having **lost spans** instead. Either way no span may start a trace of its
    own (**split**): the context itself never breaks.
    """
    killed_kinds = {name.rsplit("-", 1)[0] for name in killed}
    broken: list[str] = []
    lost = 0
    for order_id, trace_id in traces.items():
        body = httpx.get(f"{platform.console}/api/traces/{trace_id}", timeout=10)
        if body.status_code != 200:
            broken.append(f"{order_id}: no trace {trace_id}")
            continue
        spans = body.json()["spans"]
        ids = {s["span_id"] for s in spans}
        roots = [s for s in spans if s["parent_span_id"] is None]
        names = {s["name"] for s in spans if s["status"] != "ERROR"}
        missing = {JOURNEY[name] for name in set(JOURNEY) - names}
        orphans = any(s["parent_span_id"] and s["parent_span_id"] not in ids for s in spans)
        if [(r["service"], r["name"]) for r in roots] != [("edge", "POST /api/orders")] or (
            missing - killed_kinds
        ):
            broken.append(f"{order_id}: trace {trace_id} lacks part of the order's journey")
        elif missing or orphans:
            lost += 1
    split = []
    for operation in NOT_A_ROOT:
        listed = httpx.get(
            f"{platform.console}/api/traces",
            params={"operation": operation, "limit": 500},
            timeout=30,
        ).json()
        split += [f"{t['trace_id']}: starts at {t['root_name']}" for t in listed["traces"]]
    return Traces(len(traces), broken, split, lost)


def kill(pid: int) -> bool:
    """SIGKILL ``pid`` (what the OOM killer does); False if it was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


#: every chaos test's numbers, shown in pytest's summary (tests/chaos/conftest.py)
RESULTS: list[str] = []


def results_line(name: str, **counts: object) -> str:
    """One line of numbers for docs/reliability.md, kept for the end of the run."""
    line = f"CHAOS {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items())
    RESULTS.append(line)
    return line
