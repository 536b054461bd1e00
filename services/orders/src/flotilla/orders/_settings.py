"""orders' settings: one class for orders-api and orders-worker (``FLOTILLA_ORDERS_*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotilla.core import ComponentSettings, component_config


class OrdersSettings(ComponentSettings):
    """orders-api's and orders-worker's settings (``FLOTILLA_ORDERS_*``)."""

    model_config = component_config("ORDERS")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8001
    database_url: str = "sqlite:///var/orders.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    inventory_url: str = "http://127.0.0.1:8002"
    inventory_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    #: how long the simulated payment call takes
    payment_latency_ms: Annotated[int, Field(ge=0)] = 200
    #: how often the outbox relay looks for unpublished rows
    relay_interval_ms: Annotated[int, Field(gt=0)] = 200
    #: how often it tries again while the broker is unreachable
    relay_outage_interval_ms: Annotated[int, Field(gt=0)] = 1000
    #: orders still accepted after this long get their FulfilOrder sent again (0: never)
    redrive_after_ms: Annotated[int, Field(ge=0)] = 600_000
    relay_batch_size: Annotated[int, Field(gt=0)] = 100
    worker_threads: Annotated[int, Field(gt=0)] = 8
    #: fulfil_order's Dramatiq options
    fulfil_time_limit_ms: Annotated[int, Field(gt=0)] = 30_000
    fulfil_max_retries: Annotated[int, Field(ge=0)] = 5
    fulfil_min_backoff_ms: Annotated[int, Field(gt=0)] = 500
    fulfil_max_backoff_ms: Annotated[int, Field(gt=0)] = 30_000
