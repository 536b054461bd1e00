"""Placing an order (``POST /orders``): reserve the stock, then store the order, its
Idempotency-Key and its outbox row in one transaction, and publish its ``FulfilOrder`` right
after the commit (the outbox relay publishes it only if that fails).

The saga keeps two promises: stock is never held for an order that was not stored, and an
order that was stored keeps its stock. Every failure after a successful reserve releases it
(a crash in between is covered by the reservation's expiry) — except one: a ``COMMIT`` whose
answer never came (the connection to the database broke while it committed) may have stored
the order. Then the order is looked up before anything is released: found, it is accepted;
not found, the stock goes back; when the lookup cannot tell either, the hold stays (it
expires by itself if the order was not stored) and the caller is asked to retry with its
Idempotency-Key, which answers the order if it was stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from flotilla.contracts import FulfilOrder
from flotilla.core import UpstreamError, utcnow

from . import _orders
from ._inventory import InventoryClient
from ._outbox import OutboxRelay
from .models import Order

logger = logging.getLogger(__name__)


class KeyTaken(RuntimeError):
    """A concurrent request with the same Idempotency-Key stored its order first."""


class OutcomeUnknown(RuntimeError):
    """The database lost the commit's answer and cannot yet say whether the order is stored;
    the stock stays held, a retry with the same Idempotency-Key answers the order."""


def place_order(
    *,
    session: Session,
    look: Callable[[str], Order | None],
    inventory: InventoryClient,
    client_id: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    body_hash: str,
    key_ttl_s: float,
    reserve_attempts: int,
    relay: OutboxRelay | None,
) -> Order:
    """Reserve, then store; the stored order.

    Args:
        session: the write session (its transaction is committed here).
        look: the stored order with this id, read on a fresh connection (raises if the
            database cannot be read).
        inventory: inventory-api's client.
        client_id: the caller, the order's owner.
        payload: the validated ``OrderIn`` as JSON.
        idempotency_key: the caller's key, stored with the order.
        body_hash: the request's hash, stored with the key.
        key_ttl_s: how long keys are remembered (an expired one is forgotten first).
        reserve_attempts: tries of a reserve whose answer did not come.
        relay: this process's outbox relay, which marks the row once the message is
            published here; None: the row waits for a relay of another process.

    Raises:
        StockRefused: inventory refused the lines (not enough, unknown product).
        UpstreamError: inventory did not answer the reserve (anything it may have held was
            released).
        KeyTaken: another request with the key won.
        OutcomeUnknown: see the module docstring.
    """
    order_id = str(uuid.uuid4())
    try:
        reservation = inventory.reserve(
            reference=order_id, items=payload["items"], attempts=reserve_attempts
        )
    except UpstreamError:
        # NOTE: a try may have reserved although its answer never came.
        release_quietly(inventory, reference=order_id)
        raise
    committing = False
    announce = FulfilOrder(order_id=uuid.UUID(order_id))
    try:
        if idempotency_key is not None:
            # NOTE: an expired key is forgotten for good before it is used again.
            _orders.forget_expired_key(
                session=session,
                client_id=client_id,
                key=idempotency_key,
                made_before=utcnow() - timedelta(seconds=key_ttl_s),
            )
        order, outbox = _orders.create_order(
            session=session,
            order_id=order_id,
            client_id=client_id,
            customer_email=payload["customer_email"],
            items=payload["items"],
            reservation_id=reservation.id,
            amount_cents=reservation.amount_cents,
            reservation_expires_at=reservation.expires_at,
            announce=announce,
            idempotency_key=idempotency_key,
            body_hash=body_hash,
            writer_lease_s=None if relay is None else relay.WRITER_LEASE_S,
        )
        committing = True
        session.commit()
    except Exception as exc:
        _roll_back(session)
        if committing and isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError):
            stored = _stored_after_lost_commit(look, order_id)
            if stored is not None:
                logger.warning("the commit's answer was lost, but the order is stored",
                               extra={"order": order_id})  # fmt: skip
                return stored
        # NOTE: never keep stock held for an order that was not stored.
        release_quietly(inventory, reservation_id=reservation.id)
        if isinstance(exc, IntegrityError) and idempotency_key is not None:
            raise KeyTaken(idempotency_key) from exc
        raise
    if relay is not None:
        relay.publish_now(announce, outbox)
    return order


def _stored_after_lost_commit(look: Callable[[str], Order | None], order_id: str) -> Order | None:
    """The order if the lost commit stored it, None if it did not.

    Raises:
        OutcomeUnknown: the database cannot be read now either.
    """
    try:
        return look(order_id)
    except Exception as exc:
        logger.warning(
            "the commit's answer was lost and the order cannot be looked up; its stock stays "
            "held until the caller retries or the hold runs out",
            extra={"order": order_id},
        )
        raise OutcomeUnknown(order_id) from exc


def _roll_back(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # NOTE: the connection that broke cannot roll back; it is discarded
        logger.debug("rollback on a broken connection failed", exc_info=True)


def release_quietly(
    inventory: InventoryClient, *, reservation_id: str | None = None, reference: str | None = None
) -> None:  # NOTE: also a cancel's (api/routes/orders.py)
    """Give the stock back now if inventory answers; its expiry gives it back otherwise."""
    try:
        if reservation_id is not None:
            inventory.settle(reservation_id=reservation_id, action="release")
        elif reference is not None:
            inventory.release_reference(reference)
    except Exception:
        logger.warning(
            "could not release; the reservation's expiry will",
            extra={"reservation": reservation_id, "reference": reference},
        )
