"""Data access for stock and reservations (keyword-only functions; the caller commits).

A reservation takes every line or none: each line is one conditional ``UPDATE … WHERE
available >= :quantity``, so two concurrent reservations can never both take the last units
(PostgreSQL row locks; SQLite's single writer, taken up front by ``BEGIN IMMEDIATE`` in
:func:`flotilla.core.make_engine`). Lines are applied in sku order so two reservations touching
the same products always lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Product, Reservation, ReservationItem

#: The demo catalogue ``migrate`` seeds: sku, name, price in cents.
DEMO_CATALOGUE = (
    ("FLT-KAYAK", "Sea kayak", 89_900),
    ("FLT-PADDLE", "Carbon paddle", 14_900),
    ("FLT-VEST", "Buoyancy vest", 7_900),
    ("FLT-DRYBAG", "Dry bag, 20 l", 2_900),
    ("FLT-COMPASS", "Deck compass", 5_900),
    ("FLT-LANTERN", "Anchor lantern", 3_900),
)
#: Units of each demo product on the shelf when it is first seeded.
DEMO_STOCK = 50_000

Settlement = Literal["commit", "release"]
_SETTLED_STATUS: dict[Settlement, str] = {"commit": "committed", "release": "released"}


class StockError(Exception):
    """A reservation cannot be made as asked.

    Args:
        sku: the product at fault.
        index: the position of its first line in the request (for ``items.N.…``).
        message: what is wrong, for a person.
    """

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
    """A reservation as the API answers it: lines are ``(sku, quantity)`` in sku order."""

    id: str
    reference: str
    status: str
    items: tuple[tuple[str, int], ...]


def seed_catalogue(*, session: Session) -> int:
    """Insert the demo products that are missing; never touches existing stock.

    ``INSERT … ON CONFLICT DO NOTHING`` keeps two migrations running at once from failing.

    Returns:
        How many products were added.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    added = 0
    for sku, name, price in DEMO_CATALOGUE:
        statement = (
            insert(Product)
            .values(sku=sku, name=name, price_cents=price, available=DEMO_STOCK, reserved=0)
            .on_conflict_do_nothing(index_elements=["sku"])
            .returning(Product.sku)  # NOTE: rowcount is -1 here with psycopg; RETURNING is not
        )
        added += len(session.execute(statement).all())
    return added


def list_products(*, session: Session) -> list[Product]:
    """Every product, in sku order."""
    return list(session.scalars(sa.select(Product).order_by(Product.sku)))


def get_product(*, session: Session, sku: str) -> Product | None:
    """The product with ``sku``, or ``None``."""
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
    """The reservation made for ``reference`` (an order id), or ``None``."""
    found = session.scalars(sa.select(Reservation).where(Reservation.reference == reference))
    reservation = found.first()
    return _view(session, reservation) if reservation else None


def reserve(
    *, session: Session, reference: str, lines: Sequence[tuple[str, int]]
) -> ReservationView:
    """Hold every line for ``reference`` or raise; the caller commits or rolls back.

    Lines naming the same sku are summed into one.

    Raises:
        UnknownSku: a line names no product (the first such line in request order).
        InsufficientStock: a line asks for more than is available.
    """
    first_index: dict[str, int] = {}
    wanted = Counter[str]()
    for index, (sku, quantity) in enumerate(lines):
        first_index.setdefault(sku, index)
        wanted[sku] += quantity
    known = set(session.scalars(sa.select(Product.sku).where(Product.sku.in_(wanted))))
    for sku, index in first_index.items():
        if sku not in known:
            raise UnknownSku(sku, index, f"no product has sku {sku}")
    for sku in sorted(wanted):  # NOTE: one lock order for everyone: no deadlocks on PostgreSQL
        quantity = wanted[sku]
        taken = session.execute(
            sa.update(Product)
            .where(Product.sku == sku, Product.available >= quantity)
            .values(available=Product.available - quantity, reserved=Product.reserved + quantity)
        )
        if taken.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            available = session.scalar(sa.select(Product.available).where(Product.sku == sku))
            raise InsufficientStock(
                sku, first_index[sku], f"{quantity} of {sku} asked, {available} available"
            )
    reservation = Reservation(
        id=str(uuid.uuid4()), reference=reference, status="held", created_at=datetime.now(UTC)
    )
    session.add(reservation)
    session.flush()  # NOTE: a concurrent twin with the same reference fails here (unique)
    session.add_all(
        ReservationItem(reservation_id=reservation.id, sku=sku, quantity=quantity)
        for sku, quantity in wanted.items()
    )
    session.flush()
    return _view(session, reservation)


def settle(*, session: Session, reservation_id: str, action: Settlement) -> ReservationView:
    """Commit (units leave the shelf) or release (units go back) a held reservation.

    Idempotent: repeating the same action answers the same state and changes nothing.

    Raises:
        ReservationNotFound: no such reservation.
        ReservationConflict: committing a released one or releasing a committed one.
    """
    target = _SETTLED_STATUS[action]
    # NOTE: FOR UPDATE serializes a commit and a release racing on PostgreSQL; SQLite's
    # BEGIN IMMEDIATE already did.
    reservation = session.get(Reservation, reservation_id, with_for_update=True)
    if reservation is None:
        raise ReservationNotFound(reservation_id)
    if reservation.status == target:
        return _view(session, reservation)
    if reservation.status != "held":
        raise ReservationConflict(
            f"reservation {reservation_id} is {reservation.status}, it cannot be {target}"
        )
    view = _view(session, reservation)
    for sku, quantity in view.items:
        values = {"reserved": Product.reserved - quantity}
        if action == "release":
            values["available"] = Product.available + quantity
        session.execute(sa.update(Product).where(Product.sku == sku).values(**values))
    reservation.status = target
    session.flush()
    return _view(session, reservation)
