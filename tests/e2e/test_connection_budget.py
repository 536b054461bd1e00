"""The connection budget holds against a real PostgreSQL: every process the chart would run,
at its most replicas (surge included) and each pushed past its concurrency, never opens more
connections than its pool, and a server started with exactly the ``max_connections`` the
chart's budget allows answers no "too many clients".

The processes are the real ones (``python -m flotilla.orders api`` …), started with the
thread settings the chart renders for them and as many of each as the budget counts; the
database is a PostgreSQL server of the test's own (tests/support/postgres_server.py), since
the shared one's limit cannot be lowered for a test. Without the pools' caps (FastAPI's 40
threads, pools of 10 + 10 overflow) the same load opens far more than the server takes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.charts.test_chart import CHART, helm, of_kind
from tests.support.ports import free_port, wait_for_port
from tests.support.postgres_server import ThrowawayPostgres, throwaway_postgres

pytestmark = pytest.mark.e2e

#: a small release: one replica of each API, two orders workers at most, few threads
SMALL = {
    "orders-api": {"settings": {"request_threads": "3"}},
    "inventory-api": {"settings": {"request_threads": "3"}},
    "payments-api": {"settings": {"request_threads": "2"}},
    "orders-worker": {"settings": {"worker_threads": "2"}, "autoscaling": {"maxReplicas": 2}},
}
RESERVED = 3
CLIENT = {"X-Client-Id": "budget", "X-Client-Scopes": "orders:read orders:write"}
ORDER = {"customer_email": "ada@example.com", "items": [{"sku": "FLT-DRYBAG", "quantity": 1}]}
DATABASES = {"orders": "orders", "inventory": "inventory", "payments": "payments"}


def render_small(tmp_path: Path, max_connections: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart with SMALL's changes: (its budget, its Deployments by component)."""
    # NOTE: components is a map, so helm merges these changes into values.yaml's
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"components": SMALL}))
    rendered = subprocess.run(
        [
            helm(), "template", "flotilla", str(CHART), "-f", str(path),
            "--set", "replicaCounts.orders-api=1", "--set", "replicaCounts.inventory-api=1",
            "--set", f"postgresql.maxConnections={max_connections}",
            "--set", f"postgresql.reservedConnections={RESERVED}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    docs = tuple(d for d in yaml.safe_load_all(rendered.stdout) if d)
    budget = json.loads(
        of_kind(docs, "ConfigMap")["flotilla-connection-budget"]["data"]["budget.json"]
    )
    deployments = {n.removeprefix("flotilla-"): d for n, d in of_kind(docs, "Deployment").items()}
    return budget, deployments


def rendered_threads(deployment: dict[str, Any]) -> dict[str, str]:
    """The thread settings the chart gives the component (what sizes its pool)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e["value"]
        for e in container["env"]
        if e["name"].endswith(("_REQUEST_THREADS", "_WORKER_THREADS"))
    }


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


class Sampler:
    """pg_stat_activity every 50 ms: the most connections each process held at once."""

    def __init__(self, server: ThrowawayPostgres) -> None:
        # NOTE: autocommit: inside one transaction pg_stat_activity is a snapshot that stays
        self.engine = sa.create_engine(
            server.url(), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        self.most: dict[str, int] = defaultdict(int)
        self.most_total = 0
        self._stop = threading.Event()
        self._connection = self.engine.connect()  # NOTE: held, from the reserve
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = sa.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "GROUP BY application_name"
        )
        while not self._stop.wait(0.05):
            rows = self._connection.execute(query).all()
            for name, count in rows:
                self.most[name] = max(self.most[name], count)
            self.most_total = max(self.most_total, sum(count for _, count in rows))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._connection.close()
        self.engine.dispose()


async def hammer(
    url: str, method: str, path: str, clients: int, seconds: float, **kw: Any
) -> list[int]:
    """``clients`` callers at once for ``seconds``: every answer's status."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    per_call = kw.pop("per_call", dict)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=CLIENT) as http:

        async def caller() -> None:
            while time.monotonic() < deadline:
                answer = await http.request(method, path, **kw, **per_call())
                statuses.append(answer.status_code)

        await asyncio.gather(*(caller() for _ in range(clients)))
    return statuses


def test_every_process_at_its_most_stays_inside_the_budget_against_a_real_postgresql(
    tmp_path: Path, redis_url: str
) -> None:
    probe, _ = render_small(tmp_path, 1000)
    budget, deployments = render_small(tmp_path, probe["total"] + RESERVED)
    assert budget["total"] == budget["available"]  # the server allows exactly the budget
    per_pod = {row["component"]: row["perPod"] for row in budget["components"]}
    pods = {row["component"]: row["pods"] for row in budget["components"]}
    with (
        throwaway_postgres(max_connections=budget["maxConnections"]) as server,
        ExitStack() as stack,
    ):
        admin = sa.create_engine(
            server.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with admin.connect() as connection:
            for database in DATABASES.values():
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FLOTILLA_") and not k.startswith("OTEL_")
        }
        base.update({"OTEL_SDK_DISABLED": "true", "FLOTILLA_LIBRARY_LOG_LEVEL": "WARNING"})
        urls = {
            "ORDERS": server.url("orders"),
            "INVENTORY": server.url("inventory"),
            "PAYMENTS": server.url("payments"),
        }
        for member, prefix in (
            ("orders", "ORDERS"),
            ("inventory", "INVENTORY"),
            ("payments", "PAYMENTS"),
        ):
            env = {**base, f"FLOTILLA_{prefix}_DATABASE_URL": urls[prefix]}
            subprocess.run(
                [sys.executable, "-m", f"flotilla.{member}", "migrate"],
                env=env,
                check=True,
                capture_output=True,
            )

        started: dict[str, list[str]] = defaultdict(list)

        def start(component: str, member: str, prefix: str, command: str, **settings: str) -> str:
            port = free_port()
            env = {
                **base,
                **rendered_threads(deployments[component]),
                f"FLOTILLA_{prefix}_DATABASE_URL": urls[prefix],
                f"FLOTILLA_{prefix}_HOST": "127.0.0.1",
                f"FLOTILLA_{prefix}_PORT": str(port),
                **{f"FLOTILLA_{prefix}_{k.upper()}": v for k, v in settings.items()},
            }
            log = tmp_path / f"{component}-{len(started[component])}.log"
            stack.enter_context(
                process([sys.executable, "-m", f"flotilla.{member}", command], env, log)
            )
            url = f"http://127.0.0.1:{port}"
            started[component].append(url)
            return url

        inventory = [
            start("inventory-api", "inventory", "INVENTORY", "api")
            for _ in range(pods["inventory-api"])
        ]
        payments = [
            start("payments-api", "payments", "PAYMENTS", "api")
            for _ in range(pods["payments-api"])
        ]
        orders_env = {
            "broker_url": redis_url,
            "inventory_url": inventory[0],
            "payments_url": payments[0],
        }
        orders = [
            start("orders-api", "orders", "ORDERS", "api", **orders_env)
            for _ in range(pods["orders-api"])
        ]
        for _ in range(pods["orders-worker"]):
            start("orders-worker", "orders", "ORDERS", "worker", **orders_env)
        for url in inventory + payments + orders:
            wait_for_port(int(url.rsplit(":", 1)[1]), timeout_s=60)

        sampler = Sampler(server)
        try:
            placed: list[str] = []

            async def load() -> list[int]:
                key = lambda: {"headers": {**CLIENT, "Idempotency-Key": uuid.uuid4().hex}}  # noqa: E731
                charge = {"order_id": "o", "amount_cents": 100}
                jobs = [hammer(u, "GET", "/products", 12, 8) for u in inventory]
                jobs += [
                    hammer(u, "POST", "/charges", 12, 8, json=charge, per_call=key)
                    for u in payments
                ]
                jobs += [hammer(u, "GET", "/orders", 12, 8) for u in orders]

                async def place(url: str) -> list[int]:
                    statuses = []
                    async with httpx.AsyncClient(base_url=url, timeout=60, headers=CLIENT) as http:

                        async def one() -> None:
                            for _ in range(10):
                                answer = await http.post("/orders", json=ORDER)
                                statuses.append(answer.status_code)
                                if answer.status_code == 202:
                                    placed.append(answer.json()["id"])

                        await asyncio.gather(*(one() for _ in range(12)))
                    return statuses

                jobs += [place(u) for u in orders]
                return [s for statuses in await asyncio.gather(*jobs) for s in statuses]

            statuses = asyncio.run(load())
            assert statuses and all(s < 500 for s in statuses), sorted(set(statuses))
            with httpx.Client(base_url=orders[0], headers=CLIENT, timeout=10) as http:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    states = {http.get(f"/orders/{o}").json()["status"] for o in placed}
                    if states == {"fulfilled"}:
                        break
                    time.sleep(1)
                assert states == {"fulfilled"}, states
            time.sleep(0.3)
        finally:
            sampler.stop()
        assert len(placed) == 12 * 10 * len(orders)
        assert server.log_lines("too many clients") == [], server.log_lines("too many clients")[:3]
        by_component: dict[str, list[int]] = defaultdict(list)
        for name, most in sampler.most.items():
            component = name.split(" ")[0]
            by_component[component].append(most)
        for component, counts in by_component.items():
            if component in per_pod:
                assert max(counts) <= per_pod[component], (component, counts)
        # pushed to the limit: each API process ran as many transactions as it has threads
        for component in ("inventory-api", "orders-api", "payments-api"):
            threads = int(next(iter(rendered_threads(deployments[component]).values())))
            assert max(by_component[component]) >= threads, (component, by_component[component])
        assert sampler.most_total <= budget["total"]
