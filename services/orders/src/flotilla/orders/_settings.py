"""orders' settings: one class for orders-api and orders-worker (``FLOTILLA_ORDERS_*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotilla.contracts import catalogue
from flotilla.core import ComponentSettings, component_config


class OrdersSettings(ComponentSettings):
    """orders-api's and orders-worker's settings (``FLOTILLA_ORDERS_*``)."""

    model_config = component_config("ORDERS")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = catalogue.port("orders-api")
    database_url: str = "sqlite:///var/orders.db"
    #: threads that serve requests (sync endpoints and dependencies): each may hold one
    #: database connection; the pool holds two more (pool_size_for, the chart's budget)
    request_threads: Annotated[int, Field(ge=1, le=256)] = catalogue.concurrency("orders-api")
    broker_url: str = "redis://127.0.0.1:6379/0"
    inventory_url: str = catalogue.local_url("inventory-api")
    inventory_timeout_s: Annotated[float, Field(gt=0)] = 2.0
    #: tries of a reservation whose answer did not come (same reference: never held twice)
    reserve_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    #: the payment provider (the platform's stand-in, flotilla.payments, or a real one)
    payments_url: str = catalogue.local_url("payments-api")
    payments_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    #: how often the outbox relay looks for unpublished rows
    relay_interval_ms: Annotated[int, Field(gt=0)] = 200
    #: how often it tries again while the broker is unreachable
    relay_outage_interval_ms: Annotated[int, Field(gt=0)] = 1000
    #: orders stalled this long whose message the broker no longer holds are announced
    #: again (0: never)
    redrive_after_ms: Annotated[int, Field(ge=0)] = 120_000
    #: how often orders-api prunes; published outbox rows and idempotency keys older than
    #: their retention go
    prune_interval_s: Annotated[float, Field(gt=0)] = 300.0
    outbox_retention_s: Annotated[float, Field(gt=0)] = 86_400.0
    idempotency_key_ttl_s: Annotated[float, Field(gt=0)] = 86_400.0
    relay_batch_size: Annotated[int, Field(gt=0)] = 100
    #: orders-worker's threads: each may hold one database connection, its relay one more
    #: back-pressure (``_admission.py``): orders-api answers 503 + Retry-After while the
    #: orders queue's oldest ready message has waited longer than this (0: never), far below
    #: inventory's reservation hold (600 s), so no accepted order outwaits its stock
    admission_max_wait_s: Annotated[float, Field(ge=0)] = 30.0
    #: ... or while the queue holds more than this many orders (0: no depth limit)
    admission_max_depth: Annotated[int, Field(ge=0)] = 0
    worker_threads: Annotated[int, Field(gt=0, le=256)] = catalogue.concurrency("orders-worker")
    #: fulfil_order's Dramatiq options
    fulfil_time_limit_ms: Annotated[int, Field(gt=0)] = 30_000
    fulfil_max_retries: Annotated[int, Field(ge=0)] = 5
    fulfil_min_backoff_ms: Annotated[int, Field(gt=0)] = 500
    fulfil_max_backoff_ms: Annotated[int, Field(gt=0)] = 30_000
    #: mark_order_failed's time limit (it settles the reservation and refunds)
    fail_time_limit_ms: Annotated[int, Field(gt=0)] = 30_000

    @property
    def claim_lease_s(self) -> float:
        """How long a worker's claim on an order lasts: longer than any attempt may run, so a
        claim only expires when its worker is gone."""
        return self.fulfil_time_limit_ms / 1000 + 10
