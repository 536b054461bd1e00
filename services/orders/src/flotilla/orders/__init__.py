"""orders: orders-api (accept, store with an outbox, relay) and orders-worker (fulfil)."""

from ._database import migrate
from ._fulfilment import Fulfilment
from ._inventory import InventoryClient
from ._outbox import OutboxRelay, publish_pending, redrive_stalled_orders
from ._settings import OrdersSettings
from .actors import OrdersActors, declare_actors
from .api.app import create_app

__all__ = [
    "Fulfilment",
    "InventoryClient",
    "OrdersActors",
    "OrdersSettings",
    "OutboxRelay",
    "create_app",
    "declare_actors",
    "migrate",
    "publish_pending",
    "redrive_stalled_orders",
]
