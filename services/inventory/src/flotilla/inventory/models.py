"""Tables of the inventory: products, reservations and their lines.

``available`` units can still be reserved; ``reserved`` units are held by reservations that
are neither committed nor released. Check constraints make a negative count impossible even if
a bug slipped past the conditional updates in :mod:`flotilla.inventory._stock`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the inventory's tables."""


class Product(Base):
    """A product on the shelf."""

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    price_cents: Mapped[int] = mapped_column(sa.Integer)
    available: Mapped[int] = mapped_column(sa.Integer)
    reserved: Mapped[int] = mapped_column(sa.Integer, default=0)

    __table_args__ = (
        sa.CheckConstraint("available >= 0", name="available_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )


class Reservation(Base):
    """Units held for one reference (an order id): ``held`` until ``expires_at``, then
    ``committed``, ``released`` or ``expired`` (units back on the shelf)."""

    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(100), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)

    __table_args__ = (sa.Index("reservations_due", "status", "expires_at"),)


class ReservationItem(Base):
    """One product of a reservation and how many units it holds."""

    __tablename__ = "reservation_items"

    reservation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"), primary_key=True)
    quantity: Mapped[int] = mapped_column(sa.Integer)
