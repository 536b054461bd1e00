"""inventory-api: the product catalogue and stock reservations (reserve / commit / release)."""

from ._database import migrate
from ._products import DEMO_CATALOGUE, DEMO_STOCK
from ._settings import InventorySettings
from .api.app import create_app

__all__ = ["DEMO_CATALOGUE", "DEMO_STOCK", "InventorySettings", "create_app", "migrate"]
