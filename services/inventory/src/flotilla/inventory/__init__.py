"""inventory-api: the product catalogue and stock reservations (reserve / commit / release)."""

from ._database import migrate
from ._settings import InventorySettings
from .api.app import create_app

__all__ = ["InventorySettings", "create_app", "migrate"]
