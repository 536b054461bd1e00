"""The outbox relay: publishes what the database says was promised.

Runs as a thread in every orders process. A row is claimed for a while in one short
transaction, published with no transaction open (no network call while the database is
locked: SQLite's single writer would make every request wait on the broker), and marked
published in another. A broker outage delays messages but never loses them; several relays
(replicas, the worker's) never publish a row at the same time, and a relay that dies half-way
leaves rows that are published again once their claim expires (consumers are idempotent).

orders-api's relay also re-announces orders whose message is really gone (the broker lost it
after taking it: a Redis restarted without persistence), and prunes what is no longer needed:
published outbox rows and expired idempotency keys.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagate import extract
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from flotilla.core import (
    BrokerUnavailable,
    FulfilOrder,
    OrderConfirmation,
    QueueMessage,
    broker_holds,
    publish,
)

from ._orders import (
    PendingMessage,
    announce_again,
    claim_pending,
    mark_published,
    prune,
    record_announcement,
    stalled_orders,
    unclaim,
    utcnow,
)

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("flotilla.orders")

#: The messages orders writes to its outbox, by the actor that takes them.
SCHEMAS: dict[str, type[QueueMessage]] = {
    schema.actor: schema for schema in (FulfilOrder, OrderConfirmation)
}
#: How long a relay may take to publish the rows it claimed before another may take them.
CLAIM_LEASE_S = 30.0


def _stored_message(row: PendingMessage) -> QueueMessage | None:
    try:
        return SCHEMAS[row.actor].from_payload(row.payload)
    except (KeyError, ValidationError):
        # NOTE: only this package writes the outbox, so this means a bad deploy; the row is
        # kept for an operator instead of blocking every message behind it.
        logger.exception("outbox row cannot be published", extra={"outbox_id": row.id})
        return None


def publish_pending(
    *, sessions: sessionmaker[Session], broker: dramatiq.Broker, limit: int = 100
) -> int:
    """Publish up to ``limit`` outbox rows; returns how many were published.

    Raises:
        BrokerUnavailable: the broker refused; the rows not published yet wait for the next
            round (those published before the failure are marked, so none goes twice).
    """
    # NOTE: the polling itself is not traced, or every tick would be a trace of its own.
    with suppress_instrumentation(), sessions.begin() as session:
        rows = claim_pending(session=session, limit=limit, lease_s=CLAIM_LEASE_S)
    if not rows:
        return 0
    published: list[int] = []
    announced: list[tuple[str, str]] = []
    failure: BrokerUnavailable | None = None
    for row in rows:
        message = _stored_message(row)
        if message is None:
            continue
        # NOTE: the stored context makes the PRODUCER span a child of the request (or
        # message) that wrote the row, however long ago that was; it starts from an empty
        # context, so the broker calls under that span are traced again.
        token = otel_context.attach(extract(row.trace_context, context=otel_context.Context()))
        try:
            sent = publish(broker, message)
        except BrokerUnavailable as exc:
            failure = exc
            break
        finally:
            otel_context.detach(token)
        published.append(row.id)
        if isinstance(message, FulfilOrder):
            announced.append((str(message.order_id), sent.reference))
    with suppress_instrumentation(), sessions.begin() as session:
        mark_published(session=session, ids=published)
        unclaim(session=session, ids=[r.id for r in rows if r.id not in published])
        for order_id, reference in announced:
            record_announcement(session=session, order_id=order_id, reference=reference)
    if failure is not None:
        raise failure
    return len(published)


def redrive_stalled_orders(
    *,
    sessions: sessionmaker[Session],
    broker: dramatiq.Broker,
    older_than_s: float,
    limit: int = 100,
) -> list[str]:
    """Queue ``FulfilOrder`` again for orders whose message is really gone.

    The outbox guarantees a message reached the broker, not that it survived there (a Redis
    without persistence that restarts forgets its queues). An order still ``accepted`` after
    ``older_than_s``, or ``fulfilling`` with a claim that expired that long ago, is announced
    again only if the broker no longer holds its message (:func:`~flotilla.core.broker_holds`),
    so a long queue is not flooded with duplicates. A duplicate is harmless anyway: the
    worker's claim lets one delivery fulfil an order.

    Returns:
        The ids of the orders announced again.
    """
    untouched_since = utcnow() - timedelta(seconds=older_than_s)
    with suppress_instrumentation(), sessions.begin() as session:
        candidates = stalled_orders(session=session, untouched_since=untouched_since, limit=limit)
    gone = []
    with suppress_instrumentation():  # NOTE: the broker is asked with no transaction open
        for order in candidates:
            held = order.fulfil_message is not None and broker_holds(
                broker, FulfilOrder.queue, order.fulfil_message
            )
            if not held:
                gone.append(order)
    redriven: list[str] = []
    # NOTE: the periodic check makes no trace; an order found stalled continues the trace of
    # the request that placed it (a "redrive order" span there), so all of an order's work,
    # redriven or not, is one trace.
    with suppress_instrumentation(), sessions.begin() as session:
        for order in gone:
            placed = extract(order.trace_context or {}, context=otel_context.Context())
            with tracer.start_as_current_span(
                "redrive order",
                context=placed,
                attributes={"flotilla.order.id": order.id, "flotilla.order.status": order.status},
            ):
                message = FulfilOrder(order_id=uuid.UUID(order.id))
                if announce_again(
                    session=session, order_id=order.id, expected=order.status, message=message
                ):
                    redriven.append(order.id)
    if redriven:
        logger.warning("stalled orders announced again", extra={"orders": redriven})
    return redriven


def prune_history(
    *, sessions: sessionmaker[Session], outbox_retention_s: float, key_ttl_s: float
) -> tuple[int, int]:
    """Delete published outbox rows and idempotency keys older than their retention.

    Returns:
        How many outbox rows and keys were deleted.
    """
    now = utcnow()
    with suppress_instrumentation(), sessions.begin() as session:
        rows, keys = prune(
            session=session,
            published_before=now - timedelta(seconds=outbox_retention_s),
            keys_before=now - timedelta(seconds=key_ttl_s),
        )
    if rows or keys:
        logger.info("pruned", extra={"outbox_rows": rows, "idempotency_keys": keys})
    return rows, keys


@dataclass(frozen=True)
class Housekeeping:
    """What orders-api's relay does besides publishing (each ``None``: not in this process).

    Args:
        redrive_after_s: re-announce orders stalled this long (:func:`redrive_stalled_orders`).
        prune_every_s: how often to prune; with the two retentions below.
        outbox_retention_s: how long a published outbox row is kept.
        idempotency_key_ttl_s: how long an ``Idempotency-Key`` is remembered.
    """

    redrive_after_s: float | None = None
    prune_every_s: float | None = None
    outbox_retention_s: float = 86_400.0
    idempotency_key_ttl_s: float = 86_400.0


class OutboxRelay:
    """Publishes pending outbox rows every ``interval_s`` until :meth:`stop`, and does the
    :class:`Housekeeping` it is given (redrive a few times per period, prune)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        broker: dramatiq.Broker,
        interval_s: float = 0.2,
        outage_interval_s: float = 1.0,
        batch: int = 100,
        housekeeping: Housekeeping | None = None,
    ) -> None:
        self.sessions, self.broker = sessions, broker
        self.interval_s, self.outage_interval_s, self.batch = interval_s, outage_interval_s, batch
        self.housekeeping = housekeeping or Housekeeping()
        self._next_redrive = self._next_prune = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._broker_down = False
        #: polling rounds completed so far (how a caller sees that the relay is alive)
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Publish now instead of at the next tick (a new order was just stored)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _chores(self) -> None:
        chores, now = self.housekeeping, time.monotonic()
        redrive = chores.redrive_after_s
        if redrive is not None and not self._broker_down and now >= self._next_redrive:
            self._next_redrive = now + max(redrive / 4, self.interval_s)
            redrive_stalled_orders(
                sessions=self.sessions, broker=self.broker, older_than_s=redrive, limit=self.batch
            )
        if chores.prune_every_s is not None and now >= self._next_prune:
            self._next_prune = now + chores.prune_every_s
            prune_history(
                sessions=self.sessions,
                outbox_retention_s=chores.outbox_retention_s,
                key_ttl_s=chores.idempotency_key_ttl_s,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._chores()
                while (
                    publish_pending(sessions=self.sessions, broker=self.broker, limit=self.batch)
                    >= self.batch
                ):
                    pass
                if self._broker_down:
                    logger.info("broker reachable again; outbox relay resumed")
                self._broker_down = False
            except BrokerUnavailable as exc:
                if not self._broker_down:  # NOTE: one line per outage, not one per row
                    logger.warning(
                        "broker unreachable; orders wait in the outbox", extra={"error": str(exc)}
                    )
                self._broker_down = True
            except Exception:
                logger.exception("outbox relay failed; retrying")
            self.rounds += 1
            self._wake.wait(self.outage_interval_s if self._broker_down else self.interval_s)
            self._wake.clear()
