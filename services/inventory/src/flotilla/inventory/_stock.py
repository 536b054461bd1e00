"""Data access for stock and reservations (keyword-only functions; the caller commits).

A reservation takes every line or none: each line is one conditional ``UPDATE … WHERE
available >= :quantity``, so two concurrent reservations can never both take the last units
(PostgreSQL row locks; SQLite's single writer, taken up front by ``BEGIN IMMEDIATE`` in
:func:`flotilla.core.make_engine`). Lines are applied in sku order so two reservations touching
the same products always lock them in the same order and cannot deadlock each other.

A reservation cannot leak: it is held until ``expires_at`` (inventory's reservation TTL) and
then given back by :func:`expire_due` (the sweeper), or at the latest when someone tries to
commit it late. Reserving is idempotent by ``reference``: the same reference with the same
items is the same reservation; with other items it is refused (:class:`ReferenceReused`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NoReturn

import sqlalchemy as sa
from sqlalchemy.orm import Session

from flotilla.core import as_stored, as_utc, utcnow

from .models import Product, Reservation, ReservationItem

Settlement = Literal["commit", "release"]
_SETTLED_STATUS: dict[Settlement, str] = {"commit": "committed", "release": "released"}
#: Reservations whose units went back on the shelf: released by their owner, or expired.
RETURNED = ("released", "expired")


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
    """The reservation is in a state that forbids the transition (``status``: that state)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class ReferenceReused(Exception):
    """A reservation exists for this reference with other items.

    Args:
        reference: the reference at fault.
        existing: the reservation it names.
    """

    def __init__(self, reference: str, existing: ReservationView) -> None:
        super().__init__(
            f"reference {reference} already holds a reservation with other items "
            f"({', '.join(f'{q} x {s}' for s, q in existing.items)})"
        )
        self.reference, self.existing = reference, existing


@dataclass(frozen=True)
class ReservationView:
    """A reservation as the API answers it: lines are ``(sku, quantity)`` in sku order."""

    id: str
    reference: str
    status: str
    items: tuple[tuple[str, int], ...]
    expires_at: datetime | None = None
    amount_cents: int = 0  # what the items cost at today's prices


def _summed(lines: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    wanted = Counter[str]()
    for sku, quantity in lines:
        wanted[sku] += quantity
    return tuple(sorted(wanted.items()))


def _view(session: Session, reservation: Reservation) -> ReservationView:
    rows = session.execute(
        sa.select(ReservationItem.sku, ReservationItem.quantity, Product.price_cents)
        .join(Product, Product.sku == ReservationItem.sku)
        .where(ReservationItem.reservation_id == reservation.id)
        .order_by(ReservationItem.sku)
    ).all()
    return ReservationView(
        id=reservation.id,
        reference=reservation.reference,
        status=reservation.status,
        items=tuple((sku, quantity) for sku, quantity, _ in rows),
        amount_cents=sum(quantity * price for _, quantity, price in rows),
        expires_at=as_utc(reservation.expires_at) if reservation.status == "held" else None,
    )


def find_by_reference(*, session: Session, reference: str) -> ReservationView | None:
    """The reservation made for ``reference`` (an order id), or ``None``."""
    found = session.scalars(sa.select(Reservation).where(Reservation.reference == reference))
    reservation = found.first()
    return _view(session, reservation) if reservation else None


def get_reservation(*, session: Session, reservation_id: str) -> ReservationView | None:
    """The reservation with that id, or ``None``."""
    reservation = session.get(Reservation, reservation_id)
    return _view(session, reservation) if reservation else None


def same_reservation(
    *, session: Session, reference: str, lines: Sequence[tuple[str, int]]
) -> ReservationView | None:
    """The reservation already made for ``reference`` with these very lines, if any.

    Raises:
        ReferenceReused: the reference holds a reservation with other lines.
    """
    existing = find_by_reference(session=session, reference=reference)
    if existing is None:
        return None
    if existing.items != _summed(lines):
        raise ReferenceReused(reference, existing)
    return existing


def reserve(
    *,
    session: Session,
    reference: str,
    lines: Sequence[tuple[str, int]],
    ttl_s: float,
) -> ReservationView:
    """Hold every line for ``reference`` for ``ttl_s`` seconds, or raise; the caller commits
    or rolls back.

    Lines naming the same sku are summed into one. PERF: three statements for one sku: a
    conditional ``UPDATE … RETURNING`` per sku (its price comes back with it), the
    reservation, its lines; why a line failed (unknown or short) is read only when one does.

    Raises:
        UnknownSku: a line names no product (the first such line in request order).
        InsufficientStock: a line asks for more than is available.
        sqlalchemy.exc.IntegrityError: ``reference`` holds a reservation already (the caller
            rolls back and answers that one: :func:`same_reservation`).
    """
    first_index: dict[str, int] = {}
    wanted = Counter[str]()
    for index, (sku, quantity) in enumerate(lines):
        first_index.setdefault(sku, index)
        wanted[sku] += quantity
    prices: dict[str, int] = {}
    for sku in sorted(wanted):  # NOTE: one lock order for everyone: no deadlocks on PostgreSQL
        quantity = wanted[sku]
        price = session.execute(
            sa.update(Product)
            .where(Product.sku == sku, Product.available >= quantity)
            .values(available=Product.available - quantity, reserved=Product.reserved + quantity)
            .returning(Product.price_cents)
        ).scalar()
        if price is None:
            _refuse(session, wanted, first_index)
        prices[sku] = int(price)
    now = utcnow()
    reservation_id = str(uuid.uuid4())
    expires_at = now + timedelta(seconds=ttl_s)
    # NOTE: a concurrent twin with the same reference fails here (unique), as does a retry
    session.execute(
        sa.insert(Reservation).values(
            id=reservation_id, reference=reference, status="held", created_at=now,
            expires_at=expires_at,
        )
    )  # fmt: skip
    session.execute(
        sa.insert(ReservationItem),
        [{"reservation_id": reservation_id, "sku": s, "quantity": q} for s, q in wanted.items()],
    )
    return ReservationView(
        id=reservation_id,
        reference=reference,
        status="held",
        items=tuple(sorted(wanted.items())),
        expires_at=expires_at,
        amount_cents=sum(quantity * prices[sku] for sku, quantity in wanted.items()),
    )


def _refuse(session: Session, wanted: Counter[str], first_index: dict[str, int]) -> NoReturn:
    """Why a line cannot be held: the first unknown sku in request order, else a short one."""
    rows = session.execute(sa.select(Product.sku, Product.available).where(Product.sku.in_(wanted)))
    available: dict[str, int] = {str(sku): int(count) for sku, count in rows}
    for sku, index in sorted(first_index.items(), key=lambda item: item[1]):
        if sku not in available:
            raise UnknownSku(sku, index, f"no product has sku {sku}")
    for sku in sorted(wanted):
        if available[sku] < wanted[sku]:
            raise InsufficientStock(
                sku, first_index[sku], f"{wanted[sku]} of {sku} asked, {available[sku]} available"
            )
    raise InsufficientStock(  # NOTE: taken by a concurrent reservation a moment ago
        min(wanted), first_index[min(wanted)], f"{wanted[min(wanted)]} of {min(wanted)} asked"
    )


def _give_back(session: Session, reservation: Reservation, status: str) -> None:
    """Units of a held reservation leave it: to the customer (committed) or the shelf."""
    for sku, quantity in _view(session, reservation).items:
        values = {"reserved": Product.reserved - quantity}
        if status != "committed":
            values["available"] = Product.available + quantity
        session.execute(sa.update(Product).where(Product.sku == sku).values(**values))
    reservation.status = status
    session.flush()


def settle(
    *, session: Session, reservation_id: str, action: Settlement, now: datetime | None = None
) -> ReservationView:
    """Commit (units leave the shelf) or release (units go back) a held reservation.

    Idempotent: repeating the same action answers the same state and changes nothing. A
    held reservation past its expiry is expired first (the sweeper may not have come by yet),
    so a late commit fails exactly as it would a second later.

    Raises:
        ReservationNotFound: no such reservation.
        ReservationConflict: committing a released or expired one, releasing a committed one.
    """
    target = _SETTLED_STATUS[action]
    settled = _settle_held(session, reservation_id, action, now)
    if settled is not None:
        return settled
    # NOTE: FOR UPDATE serializes a commit, a release and the sweeper on PostgreSQL; SQLite's
    # BEGIN IMMEDIATE already did.
    reservation = session.get(Reservation, reservation_id, with_for_update=True)
    if reservation is None:
        raise ReservationNotFound(reservation_id)
    expires_at = as_utc(reservation.expires_at)
    if reservation.status == "held" and expires_at and expires_at <= (now or utcnow()):
        _give_back(session, reservation, "expired")
    if reservation.status == target or (action == "release" and reservation.status in RETURNED):
        return _view(session, reservation)
    if reservation.status != "held":
        raise ReservationConflict(
            f"reservation {reservation_id} is {reservation.status}, it cannot be {target}",
            reservation.status,
        )
    _give_back(session, reservation, target)
    return _view(session, reservation)


def _settle_held(
    session: Session, reservation_id: str, action: Settlement, now: datetime | None
) -> ReservationView | None:
    """PERF: the usual case, a held reservation still in time, in two statements: the
    reservation's conditional ``UPDATE … RETURNING``, then its products' units moved by one
    ``UPDATE`` over its lines (the quantities and prices come back with it). None for any
    other case, which :func:`settle` decides on the locked row.
    """
    target = _SETTLED_STATUS[action]
    of_it = ReservationItem.reservation_id == reservation_id
    lines_of = sa.select(sa.func.count()).where(of_it).scalar_subquery()
    first_sku = sa.select(sa.func.min(ReservationItem.sku)).where(of_it).scalar_subquery()
    units = sa.select(sa.func.sum(ReservationItem.quantity)).where(of_it).scalar_subquery()
    held = session.execute(
        sa.update(Reservation)
        .where(
            Reservation.id == reservation_id,
            Reservation.status == "held",
            Reservation.expires_at > as_stored(session, now),
        )
        .values(status=target)
        .returning(Reservation.reference, lines_of, first_sku, units)
    ).first()
    if held is None:
        return None
    reference, count, sku, quantity = held
    if int(count) == 1:
        items = [(str(sku), int(quantity))]  # PERF: the usual one-line reservation
    else:
        # NOTE: one product at a time, in sku order, as every reservation locks them
        items = [
            (str(s), int(q))
            for s, q in session.execute(
                sa.select(ReservationItem.sku, ReservationItem.quantity)
                .where(of_it)
                .order_by(ReservationItem.sku)
            )
        ]
    amount = 0
    for sku, quantity in items:
        values = {"reserved": Product.reserved - quantity}
        if action == "release":
            values["available"] = Product.available + quantity
        price = session.execute(
            sa.update(Product)
            .where(Product.sku == sku)
            .values(**values)
            .returning(Product.price_cents)
        ).scalar_one()
        amount += quantity * int(price)
    return ReservationView(
        id=reservation_id,
        reference=str(reference),
        status=target,
        items=tuple(items),
        amount_cents=amount,
    )


def renew(
    *, session: Session, reservation_id: str, ttl_s: float, now: datetime | None = None
) -> ReservationView:
    """Hold the reservation ``ttl_s`` more seconds from now: what its owner does just before
    it acts on it (orders' worker, before it charges), so the hold cannot lapse in between.

    A held reservation gets a new expiry. An expired one takes its units off the shelf again
    if they are still there (the hold had lapsed while the order waited in a long queue). A
    committed one is answered as it is (its owner already did the job); a released one
    cannot be renewed.

    Raises:
        ReservationNotFound: no such reservation.
        ReservationConflict: it was released.
        InsufficientStock: it expired and its units are gone.
    """
    now = now or utcnow()
    reservation = session.get(Reservation, reservation_id, with_for_update=True)
    if reservation is None:
        raise ReservationNotFound(reservation_id)
    if reservation.status == "committed":
        return _view(session, reservation)
    if reservation.status == "released":
        raise ReservationConflict(
            f"reservation {reservation_id} is released, it cannot be renewed", "released"
        )
    expires_at = as_utc(reservation.expires_at)
    if reservation.status == "held" and expires_at and expires_at <= now:
        _give_back(session, reservation, "expired")
    if reservation.status == "expired":
        for index, (sku, quantity) in enumerate(_view(session, reservation).items):
            taken = session.execute(
                sa.update(Product)
                .where(Product.sku == sku, Product.available >= quantity)
                .values(
                    available=Product.available - quantity, reserved=Product.reserved + quantity
                )
            )
            if taken.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
                raise InsufficientStock(sku, index, f"{quantity} of {sku} no longer available")
        reservation.status = "held"
    reservation.expires_at = now + timedelta(seconds=ttl_s)
    session.flush()
    return _view(session, reservation)


def expire_due(*, session: Session, now: datetime | None = None, limit: int = 200) -> int:
    """Give back the units of held reservations whose time is up; returns how many.

    On PostgreSQL the rows are locked, skipping those another sweeper or a settle holds, so
    several inventory-api replicas can sweep at once.
    """
    query = (
        sa.select(Reservation)
        .where(Reservation.status == "held", Reservation.expires_at <= as_stored(session, now))
        .order_by(Reservation.expires_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    due = list(session.scalars(query))
    for reservation in due:
        _give_back(session, reservation, "expired")
    return len(due)
