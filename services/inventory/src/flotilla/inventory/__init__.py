"""inventory-api: the product catalogue and stock reservations (reserve / commit / release)."""

from ._database import migrate
from ._settings import InventorySettings
from ._stock import DEMO_CATALOGUE, DEMO_STOCK
from .api.app import create_app

__all__ = ["DEMO_CATALOGUE", "DEMO_STOCK", "InventorySettings", "create_app", "migrate"]
