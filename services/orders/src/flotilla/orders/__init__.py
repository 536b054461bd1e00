"""orders: orders-api (accept, store with an outbox, relay) and orders-worker (fulfil)."""

from ._database import migrate
from ._fulfilment import Fulfilment
from ._inventory import InventoryClient
from ._outbox import (
    Housekeeping,
    OutboxRelay,
    prune_history,
    publish_pending,
    redrive_stalled_orders,
)
from ._payments import (
    Charge,
    HttpPaymentProvider,
    PaymentProvider,
    PaymentRefused,
    PaymentUnavailable,
    charge_key,
)
from ._settings import OrdersSettings
from .actors import OrdersActors, declare_actors
from .api.app import create_app

__all__ = [
    "Charge",
    "Fulfilment",
    "Housekeeping",
    "HttpPaymentProvider",
    "InventoryClient",
    "OrdersActors",
    "OrdersSettings",
    "OutboxRelay",
    "PaymentProvider",
    "PaymentRefused",
    "PaymentUnavailable",
    "charge_key",
    "create_app",
    "declare_actors",
    "migrate",
    "prune_history",
    "publish_pending",
    "redrive_stalled_orders",
]
