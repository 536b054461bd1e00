"""inventory-api's settings."""

from __future__ import annotations

from flotilla.core import ComponentSettings, component_config


class InventorySettings(ComponentSettings):
    """inventory-api's settings (``FLOTILLA_INVENTORY_*``).

    A SQLite ``database_url`` gets its parent folder created on first use.
    """

    model_config = component_config("INVENTORY")

    host: str = "127.0.0.1"
    port: int = 8002
    database_url: str = "sqlite:///var/inventory.db"
