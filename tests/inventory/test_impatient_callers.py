"""Callers that give up never wedge inventory-api (a real uvicorn server, SQLite).

Seen in the chaos tests: orders' workers time out on inventory under load and hang up; with
endpoints that answered what they had only read (a repeated reference) without ending their
transaction, SQLite's write lock stayed with a request that waited for a thread to serialize
its answer, while every thread waited for that lock or for a pooled connection. inventory-api
stopped answering for good. ``flotilla.core.fastapi.ServiceRouter`` ends every transaction
inside the endpoint; this test is the storm that wedged it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from flotilla.inventory import InventorySettings, create_app, migrate
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration


def test_a_storm_of_callers_that_hang_up_leaves_inventory_answering(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inventory.db"
    migrate(url)
    app = create_app(InventorySettings(database_url=url))
    line = [{"sku": "FLT-KAYAK", "quantity": 1}]
    with serve_in_thread(app) as base:
        pool = app.state.sessions.kw["bind"].pool
        httpx.post(f"{base}/reservations", json={"reference": "retried", "items": line})

        def impatient(caller: int) -> None:
            for n in range(15):
                # NOTE: every other call repeats a reference (a retry after a timeout)
                reference = "retried" if n % 2 else f"caller-{caller}-{n}"
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(
                        f"{base}/reservations",
                        json={"reference": reference, "items": line},
                        timeout=random.uniform(0.001, 0.03),
                    )

        callers = [threading.Thread(target=impatient, args=(c,)) for c in range(40)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(120)
        deadline = time.monotonic() + 60
        while pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = pool.checkedout()
        after = httpx.post(
            f"{base}/reservations", json={"reference": "after", "items": line}, timeout=30
        )
    assert left == 0, f"{left} connections still out a minute after the storm"
    assert after.status_code == 201
