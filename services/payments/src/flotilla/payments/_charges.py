"""Data access for charges (keyword-only functions; the caller owns the transaction).

What a real provider promises, and what this stand-in keeps: a request carrying an
``Idempotency-Key`` is carried out once; every later request with that key is answered with
the first result (Stripe's semantics), and a key reused with a different request is refused.
The unique key column makes the promise hold under concurrent retries too.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Charge


class KeyReused(Exception):
    """The idempotency key was used before for another request."""


@dataclass(frozen=True)
class Outcome:
    """A charge and whether this request made it (False: answered from an earlier one)."""

    charge: Charge
    created: bool


def request_hash(order_id: str, amount_cents: int, currency: str) -> str:
    """What identifies a charge request, to compare requests sharing a key."""
    body = json.dumps([order_id, amount_cents, currency])
    return hashlib.sha256(body.encode()).hexdigest()


def find_by_key(*, session: Session, key: str) -> Charge | None:
    """The charge made for ``key``, if any."""
    return session.scalars(sa.select(Charge).where(Charge.idempotency_key == key)).first()


def replay(*, session: Session, charge: Charge, wanted_hash: str) -> Outcome:
    """Answer a repeated key with its first charge.

    Raises:
        KeyReused: the key came with another request.
    """
    if charge.request_hash != wanted_hash:
        raise KeyReused(charge.idempotency_key)
    charge.replays += 1
    return Outcome(charge, created=False)


def charge(
    *, session: Session, key: str, order_id: str, amount_cents: int, currency: str
) -> Outcome:
    """Charge once per ``key``: a new charge, or the one made before for this key.

    PERF: one statement for a new charge (``INSERT … ON CONFLICT DO NOTHING RETURNING``, which
    also settles a race between two requests with the key); a read and a count only on replay.

    Raises:
        KeyReused: the key was used before with another request.
    """
    wanted = request_hash(order_id, amount_cents, currency)
    values = {
        "id": f"ch_{uuid.uuid4().hex}",
        "idempotency_key": key,
        "request_hash": wanted,
        "order_id": order_id,
        "amount_cents": amount_cents,
        "currency": currency,
        "status": "succeeded",
        "created_at": datetime.now(UTC),
        "replays": 0,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    made = session.execute(
        insert(Charge)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Charge.id)
    ).first()
    if made is not None:
        return Outcome(Charge(**values), created=True)
    existing = find_by_key(session=session, key=key)
    assert existing is not None  # NOTE: the conflict was on this key
    return replay(session=session, charge=existing, wanted_hash=wanted)


def refund(*, session: Session, charge_id: str) -> Charge | None:
    """Refund a charge (idempotent: a refunded charge stays as it is); ``None`` if unknown."""
    found = session.get(Charge, charge_id, with_for_update=True)
    if found is not None and found.status != "refunded":
        found.status, found.refunded_at = "refunded", datetime.now(UTC)
        session.flush()
    return found


def charges_of(*, session: Session, order_id: str | None, limit: int) -> list[Charge]:
    """The charges of one order (or every order), newest first."""
    query = sa.select(Charge).order_by(Charge.created_at.desc()).limit(limit)
    if order_id is not None:
        query = query.where(Charge.order_id == order_id)
    return list(session.scalars(query))


def summary(*, session: Session) -> dict[str, int]:
    """Counts over every charge: made, orders, orders charged twice, refunds, replays."""
    per_order = (
        sa.select(Charge.order_id, sa.func.count().label("n")).group_by(Charge.order_id).subquery()
    )
    row = session.execute(
        sa.select(
            sa.func.count(Charge.id),
            sa.func.count(sa.distinct(Charge.order_id)),
            sa.func.coalesce(sa.func.sum(sa.case((Charge.status == "refunded", 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(Charge.replays), 0),
        )
    ).one()
    twice = session.scalar(
        sa.select(sa.func.count()).select_from(per_order).where(per_order.c.n > 1)
    )
    return {
        "charges": int(row[0]),
        "orders": int(row[1]),
        "orders_charged_more_than_once": int(twice or 0),
        "refunds": int(row[2]),
        "replays": int(row[3]),
    }
