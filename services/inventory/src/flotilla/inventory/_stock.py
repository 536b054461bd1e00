"""Data access for stock and reservations (keyword-only functions, one transaction each).

A reservation takes every line or none: each line is one conditional ``UPDATE … WHERE
available >= :quantity``, so two concurrent reservations can never both take the last units
(PostgreSQL row locks; SQLite's single writer). Lines are applied in sku order so two
reservations touching the same products always lock them in the same order (no deadlock).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import Product, Reservation, ReservationItem

DEMO_CATALOGUE = (
    ("FLT-KAYAK", "Sea kayak", 89_900),
    ("FLT-PADDLE", "Carbon paddle", 14_900),
    ("FLT-VEST", "Buoyancy vest", 7_900),
    ("FLT-DRYBAG", "Dry bag, 20 l", 2_900),
    ("FLT-COMPASS", "Deck compass", 5_900),
    ("FLT-LANTERN", "Anchor lantern", 3_900),
)
DEMO_STOCK = 50_000


class StockError(Exception):
    """A reservation cannot be made as asked."""

    def __init__(self, sku: str, index: int, message: str) -> None:
        super().__init__(message)
        self.sku, self.index = sku, index


class UnknownSku(StockError):
    """No product has that sku."""


class InsufficientStock(StockError):
    """Fewer units are available than asked."""


class ReservationNotFound(Exception):
    """No reservation has that id."""


class ReservationConflict(Exception):
    """The reservation is in a state that forbids the transition."""


@dataclass(frozen=True)
class ReservationView:
    id: str
    reference: str
    status: str
    items: tuple[tuple[str, int], ...]


def seed_catalogue(*, session: Session) -> int:
    """Insert the demo products that are missing; never touches existing stock."""
    existing = set(session.scalars(sa.select(Product.sku)))
    added = 0
    for sku, name, price in DEMO_CATALOGUE:
        if sku not in existing:
            session.add(
                Product(sku=sku, name=name, price_cents=price, available=DEMO_STOCK, reserved=0)
            )
            added += 1
    return added


def list_products(*, session: Session) -> list[Product]:
    return list(session.scalars(sa.select(Product).order_by(Product.sku)))


def get_product(*, session: Session, sku: str) -> Product | None:
    return session.get(Product, sku)


def _view(session: Session, reservation: Reservation) -> ReservationView:
    rows = session.execute(
        sa.select(ReservationItem.sku, ReservationItem.quantity)
        .where(ReservationItem.reservation_id == reservation.id)
        .order_by(ReservationItem.sku)
    ).all()
    return ReservationView(
        id=reservation.id,
        reference=reservation.reference,
        status=reservation.status,
        items=tuple((sku, quantity) for sku, quantity in rows),
    )


def find_by_reference(*, session: Session, reference: str) -> ReservationView | None:
    found = session.scalars(sa.select(Reservation).where(Reservation.reference == reference))
    reservation = found.first()
    return _view(session, reservation) if reservation else None


def reserve(*, session: Session, reference: str, lines: list[tuple[str, int]]) -> ReservationView:
    """Hold every line for ``reference`` or raise (the caller rolls back).

    Raises:
        UnknownSku: a line names no product.
        InsufficientStock: a line asks for more than is available.
    """
    first_index: dict[str, int] = {}
    for index, (sku, _) in enumerate(lines):
        first_index.setdefault(sku, index)
    wanted = Counter[str]()
    for sku, quantity in lines:
        wanted[sku] += quantity
    for sku in sorted(wanted):
        quantity = wanted[sku]
        taken = session.execute(
            sa.update(Product)
            .where(Product.sku == sku, Product.available >= quantity)
            .values(available=Product.available - quantity, reserved=Product.reserved + quantity)
        )
        if taken.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            product = session.get(Product, sku)
            if product is None:
                raise UnknownSku(sku, first_index[sku], f"no product has sku {sku}")
            raise InsufficientStock(
                sku,
                first_index[sku],
                f"{quantity} of {sku} asked, {product.available} available",
            )
    reservation = Reservation(
        id=str(uuid.uuid4()), reference=reference, status="held", created_at=datetime.now(UTC)
    )
    session.add(reservation)
    session.flush()
    session.add_all(
        ReservationItem(reservation_id=reservation.id, sku=sku, quantity=quantity)
        for sku, quantity in wanted.items()
    )
    session.flush()
    return _view(session, reservation)


def settle(*, session: Session, reservation_id: str, action: str) -> ReservationView:
    """Commit (units leave the shelf) or release (units go back) a held reservation.

    Idempotent: repeating the same action answers the same state.

    Raises:
        ReservationNotFound: no such reservation.
        ReservationConflict: committing a released one or releasing a committed one.
    """
    target = {"commit": "committed", "release": "released"}[action]
    reservation = session.get(Reservation, reservation_id, with_for_update=True)
    if reservation is None:
        raise ReservationNotFound(reservation_id)
    if reservation.status == target:
        return _view(session, reservation)
    if reservation.status != "held":
        raise ReservationConflict(f"reservation {reservation_id} is {reservation.status}")
    view = _view(session, reservation)
    for sku, quantity in view.items:
        values = {"reserved": Product.reserved - quantity}
        if action == "release":
            values["available"] = Product.available + quantity
        session.execute(sa.update(Product).where(Product.sku == sku).values(**values))
    reservation.status = target
    session.flush()
    return _view(session, reservation)
