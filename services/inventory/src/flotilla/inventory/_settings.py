"""inventory-api's settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotilla.contracts import catalogue
from flotilla.core import ComponentSettings, component_config


class InventorySettings(ComponentSettings):
    """inventory-api's settings (``FLOTILLA_INVENTORY_*``).

    A SQLite ``database_url`` gets its parent folder created on first use.
    """

    model_config = component_config("INVENTORY")

    host: str = "127.0.0.1"
    port: int = catalogue.port("inventory-api")
    database_url: str = "sqlite:///var/inventory.db"
    #: threads that serve requests (sync endpoints and dependencies): each may hold one
    #: database connection; the pool holds two more (pool_size_for, the chart's budget)
    request_threads: Annotated[int, Field(ge=1, le=256)] = catalogue.concurrency("inventory-api")
    #: how long a reservation holds its units unless committed or released
    reservation_ttl_s: Annotated[float, Field(gt=0)] = 600.0
    #: how often expired reservations are given back (0: never, e.g. a replica that only reads)
    sweep_interval_s: Annotated[float, Field(ge=0)] = 5.0
