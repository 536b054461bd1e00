from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Header, Path, Query, Response
from sqlalchemy.orm import Session

from flotilla.contracts import OrderStatus
from flotilla.core import ProblemError, UpstreamError, as_utc, upstream_problem, utcnow
from flotilla.core.fastapi import ServiceRouter

from ... import _orders, _placing
from ..._inventory import StockRefused
from ...models import Order
from ...schemas import OrderIn, OrderOut, OrderPage
from ..deps import Admit, Caller, DbSession, Inventory, ReadSession, Relay, Settings

logger = logging.getLogger(__name__)
#: what a refused order's caller is asked to wait (the autoscaler adds workers meanwhile)
RETRY_BACKLOGGED_S = 5
router = ServiceRouter(prefix="/orders", tags=["orders"], behind_edge=True)


def _not_found(order_id: str) -> ProblemError:
    return ProblemError(
        404, "Unknown order", f"no order {order_id}", slug="unknown-order", field="id"
    )


def _out(order: Order) -> OrderOut:
    out = OrderOut.model_validate(order)
    return out.model_copy(
        update={
            "created_at": as_utc(out.created_at),
            "updated_at": as_utc(out.updated_at),
        }
    )


def _stock_problem(refused: StockRefused) -> ProblemError:
    sku = str(refused.problem.get("sku", ""))
    fields = refused.problem.get("errors") or [{"field": "items"}]
    if refused.status == 409:
        return ProblemError(
            409,
            "Not enough stock",
            refused.problem.get("detail"),
            slug="insufficient-stock",
            field=fields[0]["field"],
            sku=sku,
        )
    return ProblemError(
        422,
        "Unknown product",
        refused.problem.get("detail"),
        slug="unknown-sku",
        field=fields[0]["field"],
        sku=sku,
    )


def _replay(
    session: Session,
    response: Response,
    client_id: str,
    key: str,
    body_hash: str,
    ttl_s: float,
) -> OrderOut | None:
    """The order an earlier request with this ``Idempotency-Key`` created, if any (keys are
    remembered for ``ttl_s``, as a payment provider remembers its own).

    Raises:
        ProblemError: 422 when the key was used with another body.
    """
    newer_than = utcnow() - timedelta(seconds=ttl_s)
    known = _orders.find_idempotency_key(
        session=session, client_id=client_id, key=key, newer_than=newer_than
    )
    if known is None:
        return None
    if known.body_hash != body_hash:
        raise ProblemError(
            422,
            "Idempotency key reused",
            "this Idempotency-Key was used with another request body",
            slug="idempotency-key-reused",
            field="Idempotency-Key",
        )
    order = _orders.get_order(session=session, order_id=known.order_id)
    assert order is not None  # NOTE: a foreign key ties the key to its order
    response.headers["Location"] = f"/orders/{order.id}"
    return _out(order)


@router.post(
    "",
    status_code=202,
    responses={
        401: {"description": "no X-Client-Id: not called through the edge"},
        409: {"description": "not enough stock for a line"},
        422: {"description": "invalid order, unknown product or reused Idempotency-Key"},
        503: {
            "description": "inventory unavailable, or the workers too far behind "
            "(see Retry-After): nothing was reserved"
        },
    },
)
def place_order(
    body: OrderIn,
    session: DbSession,
    reader: ReadSession,
    inventory: Inventory,
    relay: Relay,
    settings: Settings,
    response: Response,
    caller: Caller,
    admission: Admit,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> OrderOut:
    """Reserve stock, store the order with its outbox row, answer 202 Accepted
    (``flotilla.orders._placing``: the saga and its failures); 503 while the workers are too
    far behind (``flotilla.orders._admission``), before anything is reserved."""
    payload = body.model_dump(mode="json")
    body_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    ttl_s = settings.idempotency_key_ttl_s
    if idempotency_key is not None:
        # PERF: a read: on SQLite it takes no write lock (a plain BEGIN), and it ends before
        # the call to inventory.
        replayed = _replay(reader, response, caller.client_id, idempotency_key, body_hash, ttl_s)
        reader.rollback()
        if replayed is not None:
            return replayed
    if refusal := admission.refusal():
        raise ProblemError(
            503,
            "Orders backlogged",
            f"{refusal}; nothing was reserved, retry later with the same Idempotency-Key",
            slug="orders-backlogged",
            headers={"Retry-After": str(RETRY_BACKLOGGED_S)},
            dependency="orders-worker",
        )

    def look(order_id: str) -> Order | None:
        with Session(reader.get_bind()) as fresh:  # NOTE: a new connection: the write one broke
            return _orders.get_order(session=fresh, order_id=order_id)

    try:
        order = _placing.place_order(
            session=session,
            look=look,
            inventory=inventory,
            client_id=caller.client_id,
            payload=payload,
            idempotency_key=idempotency_key,
            body_hash=body_hash,
            key_ttl_s=ttl_s,
            reserve_attempts=settings.reserve_attempts,
            relay=relay,
        )
    except StockRefused as refused:
        raise _stock_problem(refused) from None
    except UpstreamError as exc:
        raise upstream_problem(exc, "inventory-api", dependency=True, retry_after_s=2) from exc
    except _placing.OutcomeUnknown as exc:
        raise ProblemError(
            503,
            "Order outcome unknown",
            "the database lost the answer to storing the order; retry with the same "
            "Idempotency-Key to learn whether it was stored",
            slug="outcome-unknown",
            headers={"Retry-After": "2"},
            dependency="database",
        ) from exc
    except _placing.KeyTaken:
        # NOTE: a concurrent request with the same key won; answer as if we came second
        # (a read begun now: the first one's snapshot was taken before that commit).
        assert idempotency_key is not None
        replayed = _replay(reader, response, caller.client_id, idempotency_key, body_hash, ttl_s)
        if replayed is None:
            raise
        return replayed
    logger.info("order accepted", extra={"order": order.id, "amount_cents": order.amount_cents})
    response.headers["Location"] = f"/orders/{order.id}"
    return _out(order)


@router.get("", responses={401: {"description": "no X-Client-Id: not called through the edge"}})
def list_orders(
    session: ReadSession,
    caller: Caller,
    status: Annotated[OrderStatus | None, Query(description="only orders in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> OrderPage:
    """The caller's orders (every client's for an operator), newest first, a page at a time
    (pass ``next_cursor`` back as ``cursor``)."""
    try:
        page, next_cursor = _orders.list_orders(
            session=session,
            client_id=None if caller.is_operator else caller.client_id,
            status=status,
            limit=limit,
            cursor=cursor,
        )
    except _orders.InvalidCursor as exc:
        raise ProblemError(
            422,
            "Invalid cursor",
            "pass back a next_cursor from a previous page",
            slug="validation",
            field="cursor",
        ) from exc
    return OrderPage(items=[_out(o) for o in page], next_cursor=next_cursor)


@router.get(
    "/{order_id}",
    responses={
        401: {"description": "no X-Client-Id: not called through the edge"},
        404: {"description": "no such order of the caller's"},
    },
)
def get_order(order_id: uuid.UUID, session: ReadSession, caller: Caller) -> OrderOut:
    """One of the caller's orders (any for an operator); another client's is 404, as if it
    did not exist."""
    order = _orders.get_order(session=session, order_id=str(order_id))
    if order is None or not caller.may_see(order.client_id):
        raise _not_found(str(order_id))
    return _out(order)


@router.post(
    "/{order_id}/cancel",
    responses={
        401: {"description": "no X-Client-Id: not called through the edge"},
        404: {"description": "no such order of the caller's"},
        409: {"description": "the order is being fulfilled or done"},
    },
)
def cancel_order(
    order_uuid: Annotated[uuid.UUID, Path(alias="order_id")],
    session: DbSession,
    inventory: Inventory,
    caller: Caller,
) -> OrderOut:
    """Cancel one of the caller's orders no worker has claimed yet, and give its stock back
    (idempotent; 409 once it is being fulfilled or done; another client's is 404)."""
    order_id = str(order_uuid)
    order = _orders.get_order(session=session, order_id=order_id)
    if order is None or not caller.may_see(order.client_id):
        raise _not_found(order_id)
    if order.status == OrderStatus.CANCELLED:
        return _out(order)
    # NOTE: the order row decides races with the worker: the cancel and the worker's claim
    # are both conditional on "accepted", and one of them wins. Nothing was charged yet.
    if not _orders.transition(session=session, order_id=order_id, to=OrderStatus.CANCELLED):
        session.rollback()
        session.refresh(order)
        raise _not_cancellable(order_id, order.status)
    session.commit()
    session.refresh(order)
    _placing.release_quietly(inventory, reservation_id=order.reservation_id)
    return _out(order)


def _not_cancellable(order_id: str, state: str) -> ProblemError:
    return ProblemError(
        409,
        "Order cannot be cancelled",
        f"order {order_id} is {state}",
        slug="order-not-cancellable",
        field="status",
    )
