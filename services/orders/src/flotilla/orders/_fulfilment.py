"""Fulfilling an accepted order: pay, commit the stock, mark fulfilled, announce it.

Idempotent by construction: an order that is no longer ``accepted`` is left alone, the
inventory commit is idempotent, and the confirmation is written to the outbox in the same
transaction that marks the order fulfilled, so a crash between the steps never loses or
duplicates the confirmation.
"""

from __future__ import annotations

import logging
import time
import uuid

import dramatiq
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.orm import Session, sessionmaker

from flotilla.core import BrokerUnavailable, OrderConfirmation, OrderLine

from . import _orders
from ._inventory import InventoryClient, ReservationGone
from ._outbox import publish_pending

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("flotilla.orders")


class Fulfilment:
    """What the orders-worker does with a ``FulfilOrder`` message."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        inventory: InventoryClient,
        broker: dramatiq.Broker,
        payment_latency_ms: int,
    ) -> None:
        self.sessions, self.inventory, self.broker = sessions, inventory, broker
        self.payment_latency_ms = payment_latency_ms

    def charge_payment(self, order_id: str) -> None:
        """Stand-in for a payment provider's API call (latency from settings)."""
        with tracer.start_as_current_span(
            "payment.charge",
            kind=SpanKind.CLIENT,
            attributes={"flotilla.order.id": order_id, "peer.service": "payments"},
        ):
            time.sleep(self.payment_latency_ms / 1000)

    def fulfil(self, order_id: uuid.UUID) -> str:
        """Fulfil one order; returns the order's status afterwards."""
        with self.sessions() as session:
            order = _orders.get_order(session=session, order_id=str(order_id))
            if order is None:
                logger.warning("fulfil_order for an unknown order", extra={"order": str(order_id)})
                return "unknown"
            if order.status != "accepted":
                return order.status
            reservation_id, email, items = order.reservation_id, order.customer_email, order.items
        self.charge_payment(str(order_id))
        try:
            self.inventory.settle(reservation_id=reservation_id, action="commit")
        except ReservationGone:
            # NOTE: the stock was released first (a cancel won the race); the order cannot be
            # fulfilled any more, so make sure it does not stay "accepted" for ever.
            with self.sessions.begin() as session:
                _orders.transition(
                    session=session,
                    order_id=str(order_id),
                    to="cancelled",
                    reason="reservation released before fulfilment",
                )
            return "cancelled"
        confirmation = OrderConfirmation(
            order_id=order_id,
            customer_email=email,
            items=tuple(OrderLine(sku=i["sku"], quantity=i["quantity"]) for i in items),
        )
        with self.sessions.begin() as session:
            moved = _orders.transition(
                session=session, order_id=str(order_id), to="fulfilled", announce=confirmation
            )
        if moved:
            try:
                publish_pending(sessions=self.sessions, broker=self.broker)
            except BrokerUnavailable:
                logger.warning(
                    "confirmation left in the outbox for the relay", extra={"order": str(order_id)}
                )
        return "fulfilled"

    def fail(self, order_id: uuid.UUID, reason: str) -> None:
        """Mark an order failed after its retries ran out, and give its stock back."""
        with self.sessions.begin() as session:
            order = _orders.get_order(session=session, order_id=str(order_id))
            if order is None or order.status != "accepted":
                return
            reservation_id = order.reservation_id
            _orders.transition(session=session, order_id=str(order_id), to="failed", reason=reason)
        try:
            self.inventory.settle(reservation_id=reservation_id, action="release")
        except Exception:
            logger.exception(
                "could not release the stock of a failed order", extra={"order": str(order_id)}
            )
