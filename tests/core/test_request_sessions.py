"""The request sessions of ``flotilla.core.fastapi`` (``db_session``, ``read_session``).

They are ``async`` dependencies (a ``def`` one costs two thread-pool hops a request): made
and closed on the event loop, and only a transaction the endpoint left open is rolled back
on a thread. Real SQLite and real HTTP semantics through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Annotated

import anyio
import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from flotilla.core.fastapi import db_session

pytestmark = pytest.mark.unit

RequestSession = Annotated[Session, Depends(db_session)]


def test_a_transaction_left_open_is_rolled_back_while_every_request_thread_waits_for_a_connection(
    tmp_path: Path,
) -> None:
    """One request thread and one connection: request A holds the connection in an open
    transaction when it ends; request B, on the only thread, waits for that connection. A's
    rollback must not wait for a request thread (B holds it, waiting for A's connection):
    it runs on a thread of its own, and B gets the connection."""
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'one.db'}", pool_size=1, max_overflow=0, pool_timeout=5
    )
    app = FastAPI()
    app.state.sessions = sessionmaker(engine)
    a_holds, b_waits = threading.Event(), threading.Event()

    @app.get("/leaves-open")
    async def leaves_open(session: RequestSession) -> None:
        session.execute(sa.text("SELECT 1"))  # NOTE: the pool's only connection, kept
        a_holds.set()
        # NOTE: a thread of its own: the only request thread is B's
        await anyio.to_thread.run_sync(b_waits.wait, limiter=anyio.CapacityLimiter(1))

    @app.get("/needs-it")
    def needs_it(session: RequestSession) -> int:
        b_waits.set()
        return int(session.execute(sa.text("SELECT 2")).scalar_one())

    async def both() -> list[httpx.Response]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            first = asyncio.create_task(client.get("/leaves-open"))
            while not a_holds.is_set():
                assert not first.done(), first.result()
                await asyncio.sleep(0.01)
            second = asyncio.create_task(client.get("/needs-it"))
            return [await first, await second]

    a, b = asyncio.run(both())
    assert a.status_code == 200
    assert b.status_code == 200 and b.json() == 2
    assert engine.pool.checkedout() == 0  # NOTE: both connections given back
    engine.dispose()
