"""``/reservations``: hold stock for an order, then commit or release it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request, Response
from sqlalchemy.exc import IntegrityError

from flotilla.core import ProblemError
from flotilla.core.fastapi import ServiceRouter

from ... import _stock
from ...schemas import ReservationIn, ReservationOut
from ..deps import DbSession, ReadSession

logger = logging.getLogger(__name__)

router = ServiceRouter(prefix="/reservations", tags=["reservations"])


def _out(view: _stock.ReservationView) -> ReservationOut:
    return ReservationOut.model_validate(
        {
            "id": view.id,
            "reference": view.reference,
            "status": view.status,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in view.items],
            "expires_at": view.expires_at,
            "amount_cents": view.amount_cents,
        }
    )


def _short(exc: _stock.InsufficientStock, **extensions: Any) -> ProblemError:
    """409 naming the sku (and line) that is short; ``extensions`` join the problem."""
    return ProblemError(
        409,
        "Not enough stock",
        str(exc),
        slug="insufficient-stock",
        field=f"items.{exc.index}.quantity",
        sku=exc.sku,
        **extensions,
    )


def _reused(exc: _stock.ReferenceReused) -> ProblemError:
    return ProblemError(
        409,
        "Reference already used",
        str(exc),
        slug="reference-reused",
        field="reference",
        reference=exc.reference,
    )


def _same(session: DbSession, body: ReservationIn) -> _stock.ReservationView | None:
    lines = [(line.sku, line.quantity) for line in body.items]
    try:
        return _stock.same_reservation(session=session, reference=body.reference, lines=lines)
    except _stock.ReferenceReused as exc:
        raise _reused(exc) from exc


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "the reservation made earlier for this reference and these items"},
        409: {"description": "not enough stock, or the reference was used for other items"},
        422: {"description": "invalid lines or an unknown product"},
    },
)
def create_reservation(
    body: ReservationIn, session: DbSession, request: Request, response: Response
) -> ReservationOut:
    """Hold stock for every line, or none, until the reservation TTL passes.

    Idempotent by ``reference``: asking again with the same items answers the same
    reservation (200; a caller whose first try timed out finds it); other items are a 409
    problem naming the reference. PERF: the new reservation is tried first (three statements
    for one sku); the reference's earlier one is looked up only when that fails.
    """
    lines = [(line.sku, line.quantity) for line in body.items]
    ttl_s = request.app.state.settings.reservation_ttl_s
    try:
        view = _stock.reserve(session=session, reference=body.reference, lines=lines, ttl_s=ttl_s)
        session.commit()
    except (_stock.StockError, IntegrityError) as exc:
        # NOTE: the reference may hold its reservation already (a retry whose first answer
        # was lost, or a concurrent twin that won): that one is the answer, whatever the
        # stock says now; our own stock changes rolled back.
        session.rollback()
        existing = _same(session, body)
        if existing is not None:
            response.status_code = 200
            return _out(existing)
        if isinstance(exc, _stock.UnknownSku):
            raise ProblemError(
                422,
                "Unknown product",
                str(exc),
                slug="unknown-sku",
                field=f"items.{exc.index}.sku",
                sku=exc.sku,
            ) from exc
        if isinstance(exc, _stock.InsufficientStock):
            raise _short(exc) from exc
        raise
    logger.info(
        "stock reserved",
        extra={"reservation": view.id, "reference": body.reference, "lines": len(lines)},
    )
    return _out(view)


def _unknown(reservation_id: str) -> ProblemError:
    return ProblemError(
        404,
        "Unknown reservation",
        f"no reservation has id {reservation_id}",
        slug="unknown-reservation",
        field="id",
        id=reservation_id,
    )


def _conflict(exc: _stock.ReservationConflict) -> ProblemError:
    return ProblemError(
        409,
        "Reservation conflict",
        str(exc),
        slug="reservation-conflict",
        field="id",
        reservation_status=exc.status,
    )


def _settle(reservation_id: str, action: _stock.Settlement, session: DbSession) -> ReservationOut:
    try:
        view = _stock.settle(session=session, reservation_id=reservation_id, action=action)
        session.commit()
    except _stock.ReservationNotFound as exc:
        session.rollback()
        raise _unknown(reservation_id) from exc
    except _stock.ReservationConflict as exc:
        # NOTE: commit, not roll back: a hold found past its expiry was expired on the way,
        # and that must stick (the conflict changed nothing else).
        session.commit()
        raise _conflict(exc) from exc
    return _out(view)


@router.get("/{reservation_id}", responses={404: {"description": "no such reservation"}})
def get_reservation(reservation_id: str, session: ReadSession) -> ReservationOut:
    """One reservation: its lines, its status and, while held, when it expires."""
    view = _stock.get_reservation(session=session, reservation_id=reservation_id)
    if view is None:
        raise _unknown(reservation_id)
    return _out(view)


@router.post(
    "/{reservation_id}/commit",
    responses={
        404: {"description": "no such reservation"},
        409: {"description": "released or expired"},
    },
)
def commit_reservation(reservation_id: str, session: DbSession) -> ReservationOut:
    """The held units leave the shelf for good (idempotent; 409 once released)."""
    return _settle(reservation_id, "commit", session)


@router.post(
    "/{reservation_id}/release",
    responses={404: {"description": "no such reservation"}, 409: {"description": "committed"}},
)
def release_reservation(reservation_id: str, session: DbSession) -> ReservationOut:
    """The held units go back on the shelf (idempotent, also once expired; 409 once
    committed)."""
    return _settle(reservation_id, "release", session)


@router.post(
    "/{reservation_id}/renew",
    responses={
        404: {"description": "no such reservation"},
        409: {"description": "committed, released, or its units are gone"},
    },
)
def renew_reservation(reservation_id: str, session: DbSession, request: Request) -> ReservationOut:
    """Hold it for another TTL from now (its owner is about to act on it). An expired one
    takes its units again if they are still there (409 naming the sku if not); a committed
    one is answered as it is; a released one is a 409."""
    ttl_s = request.app.state.settings.reservation_ttl_s
    try:
        view = _stock.renew(session=session, reservation_id=reservation_id, ttl_s=ttl_s)
        session.commit()
    except _stock.ReservationNotFound as exc:
        session.rollback()
        raise _unknown(reservation_id) from exc
    except _stock.ReservationConflict as exc:
        session.rollback()
        raise _conflict(exc) from exc
    except _stock.InsufficientStock as exc:
        # NOTE: commit: the lapse found on the way (units back on the shelf) must stick
        session.commit()
        raise _short(exc, reservation_status="expired") from exc
    return _out(view)


@router.post(
    "/by-reference/{reference}/release",
    responses={
        404: {"description": "no reservation for the reference"},
        409: {"description": "committed"},
    },
)
def release_by_reference(reference: str, session: DbSession) -> ReservationOut:
    """Release the reservation made for ``reference``: how a caller whose reserve timed out
    gives back what it may hold without knowing the reservation's id (404 when none was
    made)."""
    found = _stock.find_by_reference(session=session, reference=reference)
    if found is None:
        session.rollback()
        raise ProblemError(
            404,
            "Unknown reservation",
            f"no reservation was made for reference {reference}",
            slug="unknown-reservation",
            field="reference",
            reference=reference,
        )
    return _settle(found.id, "release", session)
