"""``/reservations``: hold stock for an order, then commit or release it."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.exc import IntegrityError

from flotilla.core import ProblemError

from ... import _stock
from ...schemas import ReservationIn, ReservationOut
from ..deps import DbSession

router = APIRouter(prefix="/reservations", tags=["reservations"])


def _out(view: _stock.ReservationView) -> ReservationOut:
    return ReservationOut.model_validate(
        {
            "id": view.id,
            "reference": view.reference,
            "status": view.status,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in view.items],
        }
    )


@router.post("", status_code=201)
def create_reservation(
    body: ReservationIn, session: DbSession, response: Response
) -> ReservationOut:
    """Hold stock for every line, or none; the same reference answers the same reservation."""
    existing = _stock.find_by_reference(session=session, reference=body.reference)
    if existing is not None:
        response.status_code = 200
        return _out(existing)
    lines = [(line.sku, line.quantity) for line in body.items]
    try:
        view = _stock.reserve(session=session, reference=body.reference, lines=lines)
        session.commit()
    except _stock.UnknownSku as exc:
        session.rollback()
        raise ProblemError(
            422,
            "Unknown product",
            str(exc),
            slug="unknown-sku",
            field=f"items.{exc.index}.sku",
            sku=exc.sku,
        ) from exc
    except _stock.InsufficientStock as exc:
        session.rollback()
        raise ProblemError(
            409,
            "Not enough stock",
            str(exc),
            slug="insufficient-stock",
            field=f"items.{exc.index}.quantity",
            sku=exc.sku,
        ) from exc
    except IntegrityError:
        # NOTE: on PostgreSQL a concurrent request with the same reference can win the race
        # (SQLite's BEGIN IMMEDIATE serializes them); our stock changes rolled back, so
        # answer the reservation the winner made.
        session.rollback()
        existing = _stock.find_by_reference(session=session, reference=body.reference)
        if existing is None:
            raise
        response.status_code = 200
        return _out(existing)
    return _out(view)


def _settle(reservation_id: str, action: _stock.Settlement, session: DbSession) -> ReservationOut:
    try:
        view = _stock.settle(session=session, reservation_id=reservation_id, action=action)
        session.commit()
    except _stock.ReservationNotFound as exc:
        session.rollback()
        raise ProblemError(
            404,
            "Unknown reservation",
            f"no reservation has id {reservation_id}",
            slug="unknown-reservation",
            field="id",
            id=reservation_id,
        ) from exc
    except _stock.ReservationConflict as exc:
        session.rollback()
        raise ProblemError(
            409, "Reservation conflict", str(exc), slug="reservation-conflict", field="id"
        ) from exc
    return _out(view)


@router.post("/{reservation_id}/commit")
def commit_reservation(reservation_id: str, session: DbSession) -> ReservationOut:
    """The held units leave the shelf for good (idempotent; 409 once released)."""
    return _settle(reservation_id, "commit", session)


@router.post("/{reservation_id}/release")
def release_reservation(reservation_id: str, session: DbSession) -> ReservationOut:
    """The held units go back on the shelf (idempotent; 409 once committed)."""
    return _settle(reservation_id, "release", session)
