"""Readiness probes of orders' dependencies (database and broker)."""

from __future__ import annotations

from typing import Any

import dramatiq
import sqlalchemy as sa


def database_reachable(engine: sa.Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def broker_reachable(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers (Redis ``PING``; a RabbitMQ connection round trip)."""
    client: Any = getattr(broker, "client", None)
    if client is not None:
        client.ping()
        return
    rabbitmq: Any = broker
    try:
        # NOTE: dramatiq's RabbitmqBroker keeps one connection per thread and opens it lazily.
        rabbitmq.connection.process_data_events(time_limit=0)
    except Exception:
        del rabbitmq.connection  # the next probe reconnects instead of reusing a dead one
        raise
