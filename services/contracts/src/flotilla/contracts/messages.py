"""The messages between services (``flotilla-contracts[messages]``: Dramatiq and the e-mail
validator come with them). A producer never imports the consumer's actor: it builds a Dramatiq
message for the consumer's queue and actor name from one of these schemas
(``flotilla.core.publish``)."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from flotilla.core import QueueMessage

from .catalogue import NOTIFICATIONS_QUEUE, ORDERS_QUEUE

__all__ = ["FulfilOrder", "OrderConfirmation", "OrderLine"]


class OrderLine(BaseModel):
    """One line of an order as other services see it."""

    model_config = ConfigDict(frozen=True)

    sku: str
    quantity: int = Field(gt=0)


class FulfilOrder(QueueMessage):
    """orders-api → orders-worker: fulfil this accepted order."""

    queue: ClassVar[str] = ORDERS_QUEUE
    actor: ClassVar[str] = "fulfil_order"

    order_id: UUID


class OrderConfirmation(QueueMessage):
    """orders-worker → notifications-worker: mail the customer that the order is fulfilled."""

    queue: ClassVar[str] = NOTIFICATIONS_QUEUE
    actor: ClassVar[str] = "send_order_confirmation"

    order_id: UUID
    customer_email: EmailStr
    items: tuple[OrderLine, ...]
