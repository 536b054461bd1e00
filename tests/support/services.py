"""Finding the real Redis, RabbitMQ and PostgreSQL servers the tests use.

Each is looked for at its standard address (overridable by env). Absent locally, the tests that
need it skip with the reason; under ``CI=true`` an absent service fails the run instead, so a
green CI never hides a skipped backend (dramatiq's ``tests/conftest.py`` does the same).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("FLOTILLA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("FLOTILLA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "FLOTILLA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def require(url: str, default_port: int, what: str) -> str:
    """Return ``url`` if its server answers; else skip (locally) or fail (under CI)."""
    if reachable(url, default_port):
        return url
    message = f"{what} is not reachable at {url} (set the FLOTILLA_TEST_* variable to point at one)"
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover
