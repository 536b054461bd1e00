"""Data access for orders (keyword-only functions; the caller owns the transaction).

Every state change that other services must hear about writes an outbox row in the same
transaction (``_outbox_rows.py``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from flotilla.contracts import OrderStatus
from flotilla.core import QueueMessage, as_stored, as_utc, utcnow

from ._outbox_rows import PendingMessage, add_outbox, current_context
from .models import IdempotencyKey, Order


class InvalidCursor(ValueError):
    """The pagination cursor was not made by this service."""


def find_idempotency_key(
    *, session: Session, client_id: str, key: str, newer_than: datetime | None = None
) -> IdempotencyKey | None:
    """The client's stored key, unless it was made before ``newer_than`` (expired, pruned
    soon)."""
    found = session.get(IdempotencyKey, (client_id, key))
    if found is not None and newer_than is not None and as_utc(found.created_at) < newer_than:
        return None
    return found


def forget_expired_key(
    *, session: Session, client_id: str, key: str, made_before: datetime
) -> None:
    """Delete the client's key if it was made before ``made_before`` (expired), so it can be
    used again; a key a concurrent request has just stored is left alone."""
    session.execute(
        sa.delete(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < as_stored(session, made_before),
        )
    )


def create_order(
    *,
    session: Session,
    order_id: str,
    client_id: str,
    customer_email: str,
    items: list[dict[str, Any]],
    reservation_id: str,
    amount_cents: int,
    announce: QueueMessage,
    idempotency_key: str | None,
    body_hash: str,
    reservation_expires_at: datetime | None = None,
    writer_lease_s: float | None = None,
) -> tuple[Order, PendingMessage]:
    """Insert an accepted order, its outbox row (see :func:`add_outbox` for
    ``writer_lease_s``) and its idempotency key."""
    now = utcnow()
    order = Order(
        id=order_id,
        client_id=client_id,
        customer_email=customer_email,
        items=items,
        status=OrderStatus.ACCEPTED,
        reservation_id=reservation_id,
        reservation_expires_at=reservation_expires_at,
        amount_cents=amount_cents,
        created_at=now,
        updated_at=now,
        trace_context=current_context(),
    )
    session.add(order)
    session.flush()
    if idempotency_key is not None:
        session.add(
            IdempotencyKey(
                client_id=client_id,
                key=idempotency_key,
                body_hash=body_hash,
                order_id=order_id,
                created_at=now,
            )
        )
    outbox = add_outbox(
        session=session,
        message=announce,
        context=order.trace_context,
        writer_lease_s=writer_lease_s,
    )
    return order, outbox


def get_order(*, session: Session, order_id: str) -> Order | None:
    return session.get(Order, order_id)


def _encode_cursor(order: Order) -> str:
    raw = f"{as_utc(order.created_at).isoformat()}|{order.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, order_id = raw.split("|", 1)
        return as_utc(datetime.fromisoformat(moment)), order_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(cursor) from exc


def list_orders(
    *,
    session: Session,
    client_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Order], str | None]:
    """Newest first, ``limit`` at a time; returns the page and the cursor of the next one.

    Only ``client_id``'s orders, or every client's when it is ``None`` (an operator).
    """
    query = sa.select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if client_id is not None:
        query = query.where(Order.client_id == client_id)
    if status is not None:
        query = query.where(Order.status == status)
    if cursor is not None:
        moment, order_id = _decode_cursor(cursor)
        moment = as_stored(session, moment)
        query = query.where(
            sa.or_(
                Order.created_at < moment, sa.and_(Order.created_at == moment, Order.id < order_id)
            )
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return page, _encode_cursor(page[-1]) if more and page else None


def transition(
    *,
    session: Session,
    order_id: str,
    to: OrderStatus,
    reason: str | None = None,
    payment_id: str | None = None,
) -> bool:
    """Move the order to ``to`` if its status may go there (``flotilla.contracts.TRANSITIONS``);
    False when it may not.

    The condition is part of the ``UPDATE``, so of two transactions racing for one order
    (a cancel and a worker's claim, two workers finishing it) exactly one wins. Leaving
    ``fulfilling`` drops the claim.
    """
    if to is OrderStatus.FULFILLING:
        raise ValueError("an attempt takes an order with claim(), which also checks the claim")
    values: dict[str, Any] = {"status": to, "updated_at": utcnow()}
    if payment_id is not None:
        values["payment_id"] = payment_id
    if reason is not None:
        values["failure_reason"] = reason[:500]
    values.update(claimed_by=None, claim_expires_at=None)
    changed = session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.status.in_(to.sources()))
        .values(**values)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


@dataclass(frozen=True)
class Claimed:
    """What a fulfilment attempt needs of the order it claimed."""

    id: str
    reservation_id: str
    reservation_expires_at: datetime | None
    email: str
    items: list[dict[str, Any]]
    amount_cents: int
    payment_id: str | None


def claim(*, session: Session, order_id: str, attempt: str, lease_s: float) -> Claimed | None:
    """Claim the order for a fulfilment attempt before any side effect: the order if it is
    ours, None if not (PERF: the claim and the read are one ``UPDATE … RETURNING``).

    An ``accepted`` order is claimed by the first attempt that asks. A ``fulfilling`` one
    only by the same message (a retry, or the redelivery of a message whose worker died) or
    once its claim has expired (the worker that held it is gone): a duplicate delivery never
    runs beside the attempt that holds the order.
    """
    now = utcnow()
    row = session.execute(
        sa.update(Order)
        .where(
            Order.id == order_id,
            sa.or_(
                Order.status == OrderStatus.ACCEPTED,
                sa.and_(
                    Order.status == OrderStatus.FULFILLING,
                    sa.or_(
                        Order.claimed_by == attempt,
                        Order.claim_expires_at < as_stored(session, now),
                    ),
                ),
            ),
        )
        .values(
            status=OrderStatus.FULFILLING,
            claimed_by=attempt,
            claim_expires_at=now + timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(
            Order.id,
            Order.reservation_id,
            Order.reservation_expires_at,
            Order.customer_email,
            Order.items,
            Order.amount_cents,
            Order.payment_id,
        )
    ).first()
    if row is None:
        return None
    order, reservation, expires, email, items, amount, payment = row
    return Claimed(
        str(order), str(reservation), as_utc(expires) if expires else None, str(email),
        list(items), int(amount), payment,
    )  # fmt: skip


def record_payment(*, session: Session, order_id: str, payment_id: str) -> None:
    """Remember the order's charge (the provider remembers it too: this is for people)."""
    session.execute(sa.update(Order).where(Order.id == order_id).values(payment_id=payment_id))


def record_announcements(*, session: Session, references: list[tuple[str, str]]) -> None:
    """Remember the broker's reference to each order's newest FulfilOrder message
    (``(order id, reference)`` pairs; one statement for all of them)."""
    if references:
        session.execute(
            sa.update(Order), [{"id": order, "fulfil_message": ref} for order, ref in references]
        )


@dataclass(frozen=True)
class Stalled:
    """An order the redrive looks at: still waiting for a fulfilment that may never come."""

    id: str
    status: str
    fulfil_message: str | None
    trace_context: dict[str, str] | None


def stalled_orders(*, session: Session, untouched_since: datetime, limit: int) -> list[Stalled]:
    """Orders that may have lost their message, oldest first: ``accepted`` and untouched
    since ``untouched_since``, or ``fulfilling`` with a claim that expired before it."""
    since = as_stored(session, untouched_since)
    query = (
        sa.select(Order.id, Order.status, Order.fulfil_message, Order.trace_context)
        .where(
            sa.or_(
                sa.and_(Order.status == OrderStatus.ACCEPTED, Order.updated_at < since),
                sa.and_(Order.status == OrderStatus.FULFILLING, Order.claim_expires_at < since),
            )
        )
        .order_by(Order.updated_at)
        .limit(limit)
    )
    return [Stalled(*row) for row in session.execute(query)]


def announce_again(
    *, session: Session, order_id: str, expected: str, message: QueueMessage
) -> bool:
    """Write a new FulfilOrder for a stalled order, if it is still as the redrive saw it."""
    changed = session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.status == expected)
        .values(updated_at=utcnow(), fulfil_message=None)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return False
    add_outbox(session=session, message=message)
    return True
