"""``flotilla``'s own settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from flotilla.contracts.catalogue import CATALOGUE
from flotilla.core import ComponentSettings, component_config


class CliSettings(ComponentSettings):
    """``flotilla``'s settings (``FLOTILLA_CLI_*``; the broker from ``FLOTILLA_REDIS_URL``)."""

    # NOTE: by name too, so CliSettings(redis_url=...) is not silently dropped (extra=ignore).
    model_config = component_config("CLI", populate_by_name=True)

    host: str = "127.0.0.1"
    var_dir: Path = Path("var")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("FLOTILLA_REDIS_URL", "FLOTILLA_CLI_REDIS_URL"),
    )
    # NOTE: each component's port is the catalogue's unless moved (``--<name>-port``); a
    # component with no field here runs on its catalogue port
    edge_port: int = CATALOGUE.port("edge")
    #: the edge's /metrics and detailed /readyz (never the public port)
    edge_admin_port: int = CATALOGUE.component("edge").admin_port or 0
    console_port: int = CATALOGUE.port("console")
    orders_port: int = CATALOGUE.port("orders-api")
    inventory_port: int = CATALOGUE.port("inventory-api")
    payments_port: int = CATALOGUE.port("payments-api")
    smtp_port: int = CATALOGUE.port("mail-sink")
    #: the services' databases: "" for a SQLite file each under var_dir, else a URL in which
    #: ``{service}`` becomes orders, inventory and payments (the databases must exist), e.g.
    #: postgresql+psycopg://postgres@127.0.0.1:5432/flotilla_{service}
    database_url_template: str = ""
    #: how long the payment stand-in takes per charge
    payment_latency_ms: int = 200
    grace_period_s: float = 15.0
    #: show the libraries' own INFO lines too (Alembic's steps, uvicorn's start and stop)
    verbose: bool = False
    pool_min: int = 1
    pool_max: int = 8
    pool_target_per_replica: int = 20
    pool_scale_down_window_s: float = 30.0
    #: no scale-up while the machine's CPU is this busy (percent; 100 turns the hold off):
    #: locally every replica shares the same cores
    pool_cpu_ceiling_percent: float = Field(default=85.0, gt=0, le=100)
    pool_poll_interval_s: float = 1.0
    ready_timeout_s: float = 60.0
    #: a process that dies is restarted after this, doubling per crash up to the cap
    restart_initial_s: float = Field(default=1.0, gt=0)
    restart_cap_s: float = Field(default=30.0, gt=0)
    #: a run this long resets the back-off (the kubelet uses 10 minutes)
    restart_healthy_after_s: float = Field(default=60.0, gt=0)
