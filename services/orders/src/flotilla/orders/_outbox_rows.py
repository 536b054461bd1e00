"""The transactional outbox's rows (keyword-only functions; the caller owns the transaction).

Every state change that other services must hear about writes an outbox row in the same
transaction as the change, with the W3C context of the trace that caused it, so it is
published (right after the commit by its writer, or later by the relay: ``_outbox.py``) as
part of the same trace, even after a broker outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry.propagate import inject
from sqlalchemy.orm import Session

from flotilla.core import QueueMessage, as_stored, utcnow

from .models import IdempotencyKey, OutboxMessage


def current_context() -> dict[str, str]:
    """The current W3C trace context, as headers."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def add_outbox(
    *,
    session: Session,
    message: QueueMessage,
    context: dict[str, str] | None = None,
    writer_lease_s: float | None = None,
) -> PendingMessage:
    """Queue ``message`` for publication with ``context`` (by default the current one).

    With ``writer_lease_s`` the row is written claimed by its writer, which publishes it right
    after its commit (PERF: no relay round, no claim transaction per message); a relay takes
    it only when the writer has not marked it within the lease (it died in between).
    """
    carrier = current_context() if context is None else context
    now = utcnow()
    lease = None if writer_lease_s is None else now + timedelta(seconds=writer_lease_s)
    payload = message.model_dump(mode="json")
    row = OutboxMessage(
        queue=message.queue,
        actor=message.actor,
        payload=payload,
        trace_context=carrier,
        created_at=now,
        attempts=0 if lease is None else 1,
        claimed_until=lease,
    )
    session.add(row)
    session.flush()
    return PendingMessage(row.id, message.queue, message.actor, payload, carrier)


@dataclass(frozen=True)
class PendingMessage:
    """An outbox row a relay has claimed, read out of its transaction."""

    id: int
    queue: str
    actor: str
    payload: dict[str, Any]
    trace_context: dict[str, str]


def claim_pending(*, session: Session, limit: int, lease_s: float) -> list[PendingMessage]:
    """Unpublished rows no other relay is publishing, oldest first, claimed for ``lease_s``.

    The claim lets a relay publish outside any transaction (no network call while the
    database is locked): another relay skips the rows until they are published or the
    claim expires (the relay died half-way; its rows are published again).
    """
    now = utcnow()
    query = (
        sa.select(OutboxMessage)
        .where(
            OutboxMessage.published_at.is_(None),
            sa.or_(
                OutboxMessage.claimed_until.is_(None),
                OutboxMessage.claimed_until < as_stored(session, now),
            ),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.claimed_until = now + timedelta(seconds=lease_s)
        row.attempts += 1
    session.flush()
    return [
        PendingMessage(r.id, r.queue, r.actor, dict(r.payload), dict(r.trace_context or {}))
        for r in rows
    ]


def mark_published(*, session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(published_at=utcnow(), claimed_until=None)
        )


def unclaim(*, session: Session, ids: list[int]) -> None:
    """Give rows back for the next round (the broker refused them)."""
    if ids:
        session.execute(
            sa.update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(claimed_until=None)
        )


def prune(
    *, session: Session, published_before: datetime, keys_before: datetime, limit: int = 1000
) -> tuple[int, int]:
    """Delete outbox rows published and idempotency keys created before the given times.

    Returns:
        How many outbox rows and keys were deleted.
    """
    outbox_ids = sa.select(OutboxMessage.id).where(
        OutboxMessage.published_at < as_stored(session, published_before)
    )
    old_keys = sa.select(IdempotencyKey.client_id, IdempotencyKey.key).where(
        IdempotencyKey.created_at < as_stored(session, keys_before)
    )
    rows = session.execute(
        sa.delete(OutboxMessage).where(OutboxMessage.id.in_(outbox_ids.limit(limit)))
    ).rowcount  # type: ignore[attr-defined]  # CursorResult of a DELETE
    keys = session.execute(
        sa.delete(IdempotencyKey).where(
            sa.tuple_(IdempotencyKey.client_id, IdempotencyKey.key).in_(old_keys.limit(limit))
        )
    ).rowcount  # type: ignore[attr-defined]
    return int(rows), int(keys)
