"""Data access for orders (keyword-only functions; the caller owns the transaction).

Every state change that other services must hear about writes an outbox row in the same
transaction, with the W3C context of the trace that caused it, so the relay can publish it
later (even after a broker outage) as part of the same trace.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from opentelemetry.propagate import inject
from sqlalchemy.orm import Session

from flotilla.core import QueueMessage

from .models import IdempotencyKey, Order, OutboxMessage


class InvalidCursor(ValueError):
    """The pagination cursor was not made by this service."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_outbox(*, session: Session, message: QueueMessage) -> None:
    """Queue ``message`` for publication with the current trace context."""
    carrier: dict[str, str] = {}
    inject(carrier)
    session.add(
        OutboxMessage(
            queue=message.queue,
            actor=message.actor,
            payload=message.model_dump(mode="json"),
            trace_context=carrier,
            created_at=utcnow(),
            attempts=0,
        )
    )


def find_idempotency_key(*, session: Session, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, key)


def create_order(
    *,
    session: Session,
    order_id: str,
    customer_email: str,
    items: list[dict[str, Any]],
    reservation_id: str,
    announce: QueueMessage,
    idempotency_key: str | None,
    body_hash: str,
) -> Order:
    """Insert an accepted order, its outbox row and its idempotency key."""
    now = utcnow()
    order = Order(
        id=order_id,
        customer_email=customer_email,
        items=items,
        status="accepted",
        reservation_id=reservation_id,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    session.flush()
    if idempotency_key is not None:
        session.add(IdempotencyKey(key=idempotency_key, body_hash=body_hash, order_id=order_id))
    add_outbox(session=session, message=announce)
    session.flush()
    return order


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


def _as_stored(session: Session, moment: datetime) -> datetime:
    """SQLite compares the naive UTC text it stored; PostgreSQL compares instants."""
    return moment.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else moment


def list_orders(
    *, session: Session, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Order], str | None]:
    """Newest first, ``limit`` at a time; returns the page and the cursor of the next one."""
    query = sa.select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if status is not None:
        query = query.where(Order.status == status)
    if cursor is not None:
        moment, order_id = _decode_cursor(cursor)
        moment = _as_stored(session, moment)
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
    to: str,
    reason: str | None = None,
    announce: QueueMessage | None = None,
) -> bool:
    """Move an ``accepted`` order to ``to``; False when it was no longer accepted."""
    values: dict[str, Any] = {"status": to, "updated_at": utcnow()}
    if reason is not None:
        values["failure_reason"] = reason[:500]
    changed = session.execute(
        sa.update(Order).where(Order.id == order_id, Order.status == "accepted").values(**values)
    )
    moved = bool(changed.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE
    if moved and announce is not None:
        add_outbox(session=session, message=announce)
    return moved


def pending_outbox(*, session: Session, limit: int) -> list[OutboxMessage]:
    """Unpublished rows, oldest first; rows locked by another relay are skipped (PostgreSQL)."""
    query = (
        sa.select(OutboxMessage)
        .where(OutboxMessage.published_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def stalled_orders(*, session: Session, untouched_since: datetime, limit: int) -> list[Order]:
    """Orders still ``accepted`` and untouched since ``untouched_since``, oldest first.

    On PostgreSQL they are locked (skipping those another replica holds) until the caller's
    transaction ends.
    """
    query = (
        sa.select(Order)
        .where(Order.status == "accepted", Order.updated_at < _as_stored(session, untouched_since))
        .order_by(Order.updated_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))
