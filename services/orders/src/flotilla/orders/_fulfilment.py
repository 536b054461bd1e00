"""Fulfilling an accepted order: claim it, charge it once, commit its stock, confirm it.

Effects happen once, whatever is retried, redelivered or killed half-way:

1. **Claim before any effect.** A conditional ``accepted → fulfilling`` update names the
   Dramatiq message whose attempt holds the order (:func:`._orders.claim`). A duplicate
   delivery (the redrive, a requeue after a worker died) finds the order claimed by another
   live attempt and leaves it alone; a retry of the same message, or any delivery once the
   claim expired (the worker that held it is gone), resumes it.
2. **Charge with a key derived from the order.** The provider answers a repeated key with the
   first charge, so a resumed fulfilment (the worker died after charging, the reply was lost,
   the commit after it timed out) never charges again.
3. **Commit the reservation** (idempotent), renewed before the charge so the hold lasts
   through it (a hold that lapsed while the order waited in a long queue is taken again, if
   the stock is still there). If it is gone, any charge is refunded and the order ``failed``.
4. **Fulfilled and announced in one transaction**: the ``fulfilling → fulfilled`` update and
   the confirmation's outbox row commit together, and only one attempt's update can win, so
   there is exactly one confirmation.

No database transaction is open during a call to inventory or the provider (SQLite has one
writer: a slow provider must not stall every request).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import dramatiq
from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from flotilla.core import BrokerUnavailable, OrderConfirmation, OrderLine

from . import _orders
from ._inventory import InventoryClient, ReservationGone
from ._outbox import publish_pending
from ._payments import PaymentProvider

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("flotilla.orders")

#: statuses an order never leaves
FINAL = ("fulfilled", "cancelled", "failed")


@dataclass(frozen=True)
class _Claimed:
    """What an attempt needs of the order it claimed, read in the claim's transaction."""

    id: str
    reservation_id: str
    email: str
    items: list[dict[str, Any]]
    amount_cents: int
    payment_id: str | None


class Fulfilment:
    """What the orders-worker does with a ``FulfilOrder`` message (and when it gives up)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        inventory: InventoryClient,
        payments: PaymentProvider,
        broker: dramatiq.Broker,
        claim_lease_s: float = 40.0,
    ) -> None:
        self.sessions, self.inventory, self.payments = sessions, inventory, payments
        self.broker, self.claim_lease_s = broker, claim_lease_s

    def _claim(self, order_id: str, attempt: str) -> _Claimed | str:
        """The order, claimed for ``attempt``; or its status when this attempt may not act."""
        with self.sessions.begin() as session:
            claimed = _orders.claim(
                session=session, order_id=order_id, attempt=attempt, lease_s=self.claim_lease_s
            )
            order = _orders.get_order(session=session, order_id=order_id)
            if order is None:
                return "unknown"
            if not claimed:
                return order.status
            return _Claimed(
                order.id,
                order.reservation_id,
                order.customer_email,
                list(order.items),
                order.amount_cents,
                order.payment_id,
            )

    def fulfil(self, order_id: uuid.UUID, *, attempt: str) -> str:
        """Fulfil one order for delivery ``attempt`` (a Dramatiq message id).

        Returns:
            The order's status afterwards (``fulfilling`` when another attempt holds it).

        Raises:
            UpstreamError: inventory or the provider failed; the message is retried.
        """
        span = trace.get_current_span()
        span.set_attribute("flotilla.order.id", str(order_id))
        order = self._claim(str(order_id), attempt)
        if isinstance(order, str):
            span.set_attribute("flotilla.order.claimed", False)
            if order == "fulfilling":
                logger.info("order held by another attempt", extra={"order": str(order_id)})
            elif order == "unknown":
                logger.warning("fulfil_order for an unknown order", extra={"order": str(order_id)})
            return order
        span.set_attribute("flotilla.order.claimed", True)
        try:
            # NOTE: renewed, not just looked at: the hold then lasts through the charge and
            # the commit, and a hold that lapsed while the order waited is taken again.
            self.inventory.renew(order.reservation_id)
        except ReservationGone as gone:
            why = {"expired": "expired and its stock is gone", None: "lost"}
            return self._give_up(
                order, f"the reservation was {why.get(gone.status, gone.status)} before fulfilment"
            )
        charge = self.payments.charge(order_id=order.id, amount_cents=order.amount_cents)
        if order.payment_id != charge.id:
            with self.sessions.begin() as session:
                _orders.record_payment(session=session, order_id=order.id, payment_id=charge.id)
        try:
            self.inventory.settle(reservation_id=order.reservation_id, action="commit")
        except ReservationGone as gone:
            return self._give_up(order, f"the reservation was {gone.status} before its commit")
        return self._complete(order)

    def _complete(self, order: _Claimed) -> str:
        confirmation = OrderConfirmation(
            order_id=uuid.UUID(order.id),
            customer_email=order.email,
            items=tuple(OrderLine(sku=i["sku"], quantity=i["quantity"]) for i in order.items),
        )
        with self.sessions.begin() as session:
            moved = _orders.transition(
                session=session,
                order_id=order.id,
                to="fulfilled",
                announce=confirmation,
                from_=("accepted", "fulfilling"),
            )
            status = "fulfilled" if moved else self._status(session, order.id)
        if moved:
            try:
                publish_pending(sessions=self.sessions, broker=self.broker)
            except BrokerUnavailable:
                logger.warning(
                    "confirmation left in the outbox for the relay", extra={"order": order.id}
                )
        return status

    def _give_up(self, order: _Claimed, reason: str) -> str:
        """Refund whatever was charged, then mark the order failed (the stock is back)."""
        refunded = self.payments.refund_order(order_id=order.id)
        with self.sessions.begin() as session:
            _orders.transition(
                session=session,
                order_id=order.id,
                to="failed",
                reason=reason + (f"; {len(refunded)} charge(s) refunded" if refunded else ""),
                from_=("accepted", "fulfilling"),
            )
            status = self._status(session, order.id)
        logger.warning("order failed", extra={"order": order.id, "reason": reason})
        return status

    @staticmethod
    def _status(session: Session, order_id: str) -> str:
        order = _orders.get_order(session=session, order_id=order_id)
        return order.status if order else "unknown"

    def fail(self, order_id: uuid.UUID, reason: str, *, attempt: str) -> str:
        """Settle an order whose fulfilment ran out of retries.

        Its stock goes back and any charge is refunded, unless the commit did go through
        (its answer came too late): then the customer's units are taken, so the order is
        charged (once, by its key) and fulfilled instead.

        Raises:
            UpstreamError: inventory or the provider cannot be asked now; the handler is
                retried, and the order stays claimed until it succeeds or the redrive takes it.
        """
        order = self._claim(str(order_id), attempt)
        if isinstance(order, str):
            return order
        try:
            self.inventory.settle(reservation_id=order.reservation_id, action="release")
        except ReservationGone as gone:
            if gone.status != "committed":
                raise
            self.payments.charge(order_id=order.id, amount_cents=order.amount_cents)
            logger.warning("commit had gone through; order fulfilled", extra={"order": order.id})
            return self._complete(order)
        return self._give_up(order, reason)
