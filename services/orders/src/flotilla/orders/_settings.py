from __future__ import annotations

from flotilla.core import ComponentSettings, component_config


class OrdersSettings(ComponentSettings):
    """orders-api's and orders-worker's settings (``FLOTILLA_ORDERS_*``)."""

    model_config = component_config("ORDERS")

    host: str = "127.0.0.1"
    port: int = 8001
    database_url: str = "sqlite:///var/orders.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    inventory_url: str = "http://127.0.0.1:8002"
    inventory_timeout_s: float = 5.0
    payment_latency_ms: int = 200
    relay_interval_ms: int = 200
    relay_batch_size: int = 100
    worker_threads: int = 8
    fulfil_time_limit_ms: int = 30_000
    fulfil_max_retries: int = 5
    fulfil_min_backoff_ms: int = 500
    fulfil_max_backoff_ms: int = 30_000
