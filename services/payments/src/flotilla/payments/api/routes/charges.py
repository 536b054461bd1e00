"""``/charges``: charge once per Idempotency-Key, refund, and count."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from opentelemetry import trace
from sqlalchemy.orm import Session

from flotilla.core import ProblemError
from flotilla.core.fastapi import ServiceRouter

from ... import _charges
from ...schemas import ChargeIn, ChargeList, ChargeOut, ChargeSummary
from ..deps import DbSession, Injector, ReadSession

logger = logging.getLogger(__name__)
router = ServiceRouter(prefix="/charges", tags=["charges"])

REPLAYED = "Idempotent-Replayed"  # NOTE: the header Stripe sets on a replayed answer


def _unavailable(detail: str) -> ProblemError:
    return ProblemError(
        503,
        "Payment provider unavailable",
        detail,
        slug="provider-unavailable",
        headers={"Retry-After": "1"},
    )


def _key_reused(key: str) -> ProblemError:
    return ProblemError(
        422,
        "Idempotency key reused",
        f"Idempotency-Key {key} was used with another request",
        slug="idempotency-key-reused",
        field="Idempotency-Key",
    )


def _charge(session: Session, key: str, body: ChargeIn) -> _charges.Outcome:
    """Charge (or replay) and end the transaction before returning, whatever happens."""
    try:
        return _charge_in_transaction(session, key, body)
    finally:
        if session.in_transaction():
            session.rollback()


def _charge_in_transaction(session: Session, key: str, body: ChargeIn) -> _charges.Outcome:
    # NOTE: a concurrent request with the same key is settled by the insert's ON CONFLICT:
    # whichever commits second reads the first one's charge as its replay
    outcome = _charges.charge(
        session=session,
        key=key,
        order_id=body.order_id,
        amount_cents=body.amount_cents,
        currency=body.currency,
    )
    session.commit()
    return outcome


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "the charge made earlier for this Idempotency-Key (replayed)"},
        422: {"description": "invalid charge, or the Idempotency-Key was used for another"},
        503: {"description": "an injected failure (PUT /faults); retry with the same key"},
    },
)
async def create_charge(
    body: ChargeIn,
    session: DbSession,
    faults: Injector,
    response: Response,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
) -> ChargeOut:
    """Charge the order once: a repeated ``Idempotency-Key`` answers the first charge (200,
    ``Idempotent-Replayed: true``), the same key with another request is a 422 problem."""
    current = faults.faults
    if current.latency_ms:
        await asyncio.sleep(current.latency_ms / 1000)
    verdict = faults.draw()
    span = trace.get_current_span()
    span.set_attribute("payments.fault", verdict)
    if verdict == "refuse":
        raise _unavailable("injected failure: nothing was charged")
    try:
        outcome = await run_in_threadpool(_charge, session, idempotency_key, body)
    except _charges.KeyReused as exc:
        raise _key_reused(idempotency_key) from exc
    span.set_attribute("payments.charge.id", outcome.charge.id)
    span.set_attribute("payments.replayed", not outcome.created)
    if verdict == "lose-reply":
        logger.info("charge made, reply dropped on purpose", extra={"charge": outcome.charge.id})
        raise _unavailable("injected lost reply: the charge may have been made")
    if not outcome.created:
        response.status_code = 200
        response.headers[REPLAYED] = "true"
    return ChargeOut.model_validate(outcome.charge)


@router.get("")
def list_charges(
    session: ReadSession,
    order_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChargeList:
    """The charges of ``order_id`` (or the newest of all), newest first."""
    found = _charges.charges_of(session=session, order_id=order_id, limit=limit)
    return ChargeList(items=[ChargeOut.model_validate(c) for c in found])


@router.get("/summary")
def summary(session: ReadSession) -> ChargeSummary:
    """How many charges, orders charged, orders charged more than once, refunds, replays."""
    return ChargeSummary(**_charges.summary(session=session))


@router.post(
    "/{charge_id}/refund",
    responses={
        404: {"description": "no such charge"},
        503: {"description": "an injected failure (PUT /faults)"},
    },
)
async def refund_charge(charge_id: str, session: DbSession, faults: Injector) -> ChargeOut:
    """Refund a charge; refunding it again answers the same refunded charge."""
    if faults.faults.latency_ms:
        await asyncio.sleep(faults.faults.latency_ms / 1000)

    def refund() -> ChargeOut | None:
        found = _charges.refund(session=session, charge_id=charge_id)
        session.commit()
        return ChargeOut.model_validate(found) if found else None

    refunded = await run_in_threadpool(refund)
    if refunded is None:
        raise ProblemError(
            404,
            "Unknown charge",
            f"no charge has id {charge_id}",
            slug="unknown-charge",
            field="id",
        )
    return refunded
