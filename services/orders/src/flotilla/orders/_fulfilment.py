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
3. **Commit the reservation** (idempotent), renewed before the charge when the hold could
   lapse before the charge and the commit are done (it ends within the claim's lease: the
   order waited long in the queue), so it lasts through them; a hold that lapsed is taken
   again, if the stock is still there. If it is gone, any charge is refunded and the order
   ``failed``. A hold with time to spare costs no call (PERF: the renew was an HTTP hop and
   three writes in inventory for nearly every order).
4. **Fulfilled and announced in one transaction**: the ``fulfilling → fulfilled`` update
   (with the charge's id) and the confirmation's outbox row commit together, and only one
   attempt's update can win, so there is exactly one confirmation. It is published right
   after the commit (the outbox relay only marks it, or publishes it if that failed).

No database transaction is open during a call to inventory or the provider (SQLite has one
writer: a slow provider must not stall every request).
"""

from __future__ import annotations

import logging
import uuid

from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from flotilla.contracts import OrderConfirmation, OrderLine, OrderStatus
from flotilla.core import utcnow

from . import _orders, _outbox_rows
from ._inventory import InventoryClient, ReservationGone
from ._outbox import OutboxRelay
from ._payments import PaymentProvider

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("flotilla.orders")


class Fulfilment:
    """What the orders-worker does with a ``FulfilOrder`` message (and when it gives up)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        inventory: InventoryClient,
        payments: PaymentProvider,
        relay: OutboxRelay,
        claim_lease_s: float = 40.0,
    ) -> None:
        self.sessions, self.inventory, self.payments = sessions, inventory, payments
        self.relay, self.claim_lease_s = relay, claim_lease_s

    def _claim(self, order_id: str, attempt: str) -> _orders.Claimed | str:
        """The order, claimed for ``attempt``; or its status when this attempt may not act."""
        with self.sessions.begin() as session:
            claimed = _orders.claim(
                session=session, order_id=order_id, attempt=attempt, lease_s=self.claim_lease_s
            )
            if claimed is not None:
                return claimed
            order = _orders.get_order(session=session, order_id=order_id)
            return order.status if order is not None else "unknown"

    def _hold_may_lapse(self, order: _orders.Claimed) -> bool:
        """Whether the reservation could expire before this attempt is done with it."""
        if order.reservation_expires_at is None:
            return True  # NOTE: an order stored before its expiry was: renew, as before
        left = order.reservation_expires_at - utcnow()
        return left.total_seconds() <= self.claim_lease_s

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
            if order == OrderStatus.FULFILLING:
                logger.info("order held by another attempt", extra={"order": str(order_id)})
            elif order == "unknown":
                logger.warning("fulfil_order for an unknown order", extra={"order": str(order_id)})
            return order
        span.set_attribute("flotilla.order.claimed", True)
        renewing = self._hold_may_lapse(order)
        span.set_attribute("flotilla.reservation.renewed", renewing)
        if renewing:
            try:
                # NOTE: renewed, not just looked at: the hold then lasts through the charge
                # and the commit, and a hold that lapsed while the order waited is taken again.
                self.inventory.renew(order.reservation_id)
            except ReservationGone as gone:
                why = {"expired": "expired and its stock is gone", None: "lost"}
                reason = why.get(gone.status, gone.status)
                return self._give_up(order, f"the reservation was {reason} before fulfilment")
        charge = self.payments.charge(order_id=order.id, amount_cents=order.amount_cents)
        try:
            self.inventory.settle(reservation_id=order.reservation_id, action="commit")
        except ReservationGone as gone:
            if gone.status == "expired" and not renewing:
                # NOTE: it lapsed after all (a clock, a stall): take it again, as a renew does
                try:
                    self.inventory.renew(order.reservation_id)
                    self.inventory.settle(reservation_id=order.reservation_id, action="commit")
                except ReservationGone as again:
                    return self._give_up(order, f"the reservation was {again.status} at commit")
            else:
                return self._give_up(order, f"the reservation was {gone.status} before its commit")
        return self._complete(order, payment_id=charge.id)

    def _complete(self, order: _orders.Claimed, payment_id: str | None = None) -> str:
        confirmation = OrderConfirmation(
            order_id=uuid.UUID(order.id),
            customer_email=order.email,
            items=tuple(OrderLine(sku=i["sku"], quantity=i["quantity"]) for i in order.items),
        )
        with self.sessions.begin() as session:
            moved = _orders.transition(
                session=session,
                order_id=order.id,
                to=OrderStatus.FULFILLED,
                payment_id=payment_id,
            )
            outbox = (
                _outbox_rows.add_outbox(
                    session=session,
                    message=confirmation,
                    writer_lease_s=self.relay.WRITER_LEASE_S,
                )
                if moved
                else None
            )
            status = OrderStatus.FULFILLED if moved else self._status(session, order.id)
        if outbox is not None:
            self.relay.publish_now(confirmation, outbox)
        return status

    def _give_up(self, order: _orders.Claimed, reason: str) -> str:
        """Refund whatever was charged, then mark the order failed (the stock is back)."""
        refunded = self.payments.refund_order(order_id=order.id)
        with self.sessions.begin() as session:
            _orders.transition(
                session=session,
                order_id=order.id,
                to=OrderStatus.FAILED,
                reason=reason + (f"; {len(refunded)} charge(s) refunded" if refunded else ""),
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
            charge = self.payments.charge(order_id=order.id, amount_cents=order.amount_cents)
            logger.warning("commit had gone through; order fulfilled", extra={"order": order.id})
            return self._complete(order, payment_id=charge.id)
        return self._give_up(order, reason)
