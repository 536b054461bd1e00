"""The payment stand-in's one table: every charge it ever made."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the payment stand-in's tables."""


class Charge(Base):
    """One charge, made once per ``idempotency_key``; ``refunded_at`` once refunded."""

    __tablename__ = "charges"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    order_id: Mapped[str] = mapped_column(sa.String(100), index=True)
    amount_cents: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16))  # succeeded | refunded
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    #: how many requests with this key were answered with the first result
    replays: Mapped[int] = mapped_column(sa.Integer, default=0)
