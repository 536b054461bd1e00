"""Tables of orders-api: orders, idempotency keys and the transactional outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    customer_email: Mapped[str] = mapped_column(sa.String(320))
    items: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    #: a ``flotilla.contracts.OrderStatus`` (its TRANSITIONS say what may follow what)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    reservation_id: Mapped[str] = mapped_column(sa.String(36))
    #: until when inventory holds its stock (as inventory answered the reserve; NULL: unknown)
    reservation_expires_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True
    )
    amount_cents: Mapped[int] = mapped_column(sa.Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: the Dramatiq message whose attempt holds the order (``fulfilling``), and until when
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True
    )
    #: the provider's charge, once made
    payment_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    #: the broker's reference to the last FulfilOrder published for it (the redrive asks)
    fulfil_message: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    #: the W3C context of the request that placed it: a redrive continues that trace
    trace_context: Mapped[dict[str, str] | None] = mapped_column(sa.JSON, nullable=True)
    #: who placed it (the edge's X-Client-Id): only they (or an operator) see or cancel it
    client_id: Mapped[str] = mapped_column(sa.String(200), default="")

    __table_args__ = (sa.Index("orders_client_created", "client_id", "created_at"),)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    #: keys are the client's own: two clients may use the same one for different orders
    client_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    body_hash: Mapped[str] = mapped_column(sa.String(64))
    order_id: Mapped[str] = mapped_column(sa.ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


class OutboxMessage(Base):
    """A message to publish, written in the same transaction as the change it announces."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(sa.String(100))
    actor: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    trace_context: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True, index=True
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: a relay is publishing the row until then (another relay may take it after)
    claimed_until: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), nullable=True
    )
