from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from flotilla.core import ComponentSettings, component_config


class CliSettings(ComponentSettings):
    """``flotilla``'s settings (``FLOTILLA_CLI_*``; the broker from ``FLOTILLA_REDIS_URL``)."""

    model_config = component_config("CLI")

    host: str = "127.0.0.1"
    var_dir: Path = Path("var")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("FLOTILLA_REDIS_URL", "FLOTILLA_CLI_REDIS_URL"),
    )
    edge_port: int = 8080
    console_port: int = 8090
    orders_port: int = 8001
    inventory_port: int = 8002
    smtp_port: int = 1025
    payment_latency_ms: int = 200
    grace_period_s: float = 15.0
    ready_timeout_s: float = 60.0
