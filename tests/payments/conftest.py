"""The payment stand-in served by uvicorn on a free port, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flotilla.payments import PaymentsSettings, create_app, migrate
from tests.support.servers import serve_in_thread


@pytest.fixture
def payments(database_url: str) -> Iterator[httpx.Client]:
    """A real payments-api over HTTP (``database_url`` runs each test on both databases)."""
    migrate(database_url)
    with (
        serve_in_thread(create_app(PaymentsSettings(database_url=database_url))) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        yield client
