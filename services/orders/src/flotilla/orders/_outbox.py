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
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import dramatiq
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagate import extract
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from flotilla.contracts import FulfilOrder, OrderConfirmation
from flotilla.core import BrokerUnavailable, QueueMessage, broker_holds, publish, utcnow

from ._orders import announce_again, record_announcements, stalled_orders
from ._outbox_rows import PendingMessage, claim_pending, mark_published, prune, unclaim

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


@dataclass
class _Outcome:
    """What became of outbox rows a relay or a writer published: marked in one transaction."""

    published: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    #: (order id, the broker's reference to its FulfilOrder message)
    announced: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, broker: dramatiq.Broker, message: QueueMessage, row: PendingMessage) -> None:
        """Publish ``row``'s message.

        Raises:
            BrokerUnavailable: the broker refused it (the row counts as refused).
        """
        # NOTE: the stored context makes the PRODUCER span a child of the request (or
        # message) that wrote the row, however long ago that was; it starts from an empty
        # context, so the broker calls under that span are traced again.
        token = otel_context.attach(extract(row.trace_context, context=otel_context.Context()))
        try:
            sent = publish(broker, message)
        except BrokerUnavailable:
            self.refused.append(row.id)
            raise
        finally:
            otel_context.detach(token)
        self.published.append(row.id)
        if isinstance(message, FulfilOrder):
            self.announced.append((str(message.order_id), sent.reference))

    def record(self, sessions: sessionmaker[Session]) -> None:
        """Mark the published rows, give the refused ones back to the next round, and
        remember the references of the FulfilOrder messages."""
        if not (self.published or self.refused):
            return
        with suppress_instrumentation(), sessions.begin() as session:
            mark_published(session=session, ids=self.published)
            unclaim(session=session, ids=self.refused)
            record_announcements(session=session, references=self.announced)


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
    outcome = _Outcome()
    failure: BrokerUnavailable | None = None
    for row in rows:
        message = _stored_message(row)
        if message is None:
            continue
        try:
            outcome.publish(broker, message, row)
        except BrokerUnavailable as exc:
            failure = exc
            break
    done = set(outcome.published)
    outcome.refused = [r.id for r in rows if r.id not in done]
    outcome.record(sessions)
    if failure is not None:
        raise failure
    return len(outcome.published)


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
    :class:`Housekeeping` it is given (redrive a few times per period, prune).

    The rows it polls for are the safety net: a writer hands its message over right after its
    commit (:meth:`publish_now`), and the relay's publisher thread publishes it at once and
    marks many such rows in one transaction (PERF: before, each message cost the relay a
    claim transaction and a mark transaction). The polling publishes a row only when the
    broker refused it, or its writer died before it was marked (its claim,
    ``WRITER_LEASE_S``, ran out).
    """

    #: how long a row written for :meth:`publish_now` is its writer's alone (its publish and
    #: mark take milliseconds; after this a relay publishes it again)
    WRITER_LEASE_S = 10.0
    #: how often the publisher marks what it published (the marks of many rows in one write)
    MARK_EVERY_S = 0.1

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
        #: messages the publisher thread has published or handed back to the polling so far
        self.handled = 0
        # NOTE: messages their writers committed, to publish at once (see publish_now)
        #: (None ends the publisher, after what was queued before it)
        self._outgoing: queue.Queue[tuple[QueueMessage, PendingMessage] | None] = queue.Queue(
            maxsize=10_000
        )
        self._publisher = threading.Thread(
            target=self._publish_written, name="outbox-publisher", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._publisher.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        if self._publisher.is_alive():
            self._outgoing.put(None)  # NOTE: what is queued before it is published and marked
            self._publisher.join(timeout_s)

    def publish_now(self, message: QueueMessage, row: PendingMessage) -> None:
        """Publish the message of an outbox row its writer has just committed, claimed with
        ``writer_lease_s=WRITER_LEASE_S``: at once, on the relay's publisher thread (so a
        slow or hanging broker never holds up the writer), and marked with the others
        published meanwhile in one transaction. A broker that refuses, or a publisher too far
        behind, leaves the row to the relay."""
        try:
            self._outgoing.put_nowait((message, row))
        except queue.Full:  # NOTE: the row stays durable; its claim runs out, the relay takes it
            logger.warning("publisher behind; the outbox relay will publish the row",
                           extra={"outbox_id": row.id})  # fmt: skip

    def _publish_written(self) -> None:
        """The publisher thread: publishes what writers hand it as it comes, and marks it
        every ``MARK_EVERY_S`` (one transaction for everything published meanwhile)."""
        outcome, mark_at = _Outcome(), float("inf")
        stopping = False
        while not stopping:
            wait = None if mark_at == float("inf") else max(0.0, mark_at - time.monotonic())
            try:
                item = self._outgoing.get(timeout=wait)
            except queue.Empty:
                pass
            else:
                if item is None:
                    stopping = True
                    continue
                message, row = item
                try:
                    outcome.publish(self.broker, message, row)
                except BrokerUnavailable as exc:
                    logger.warning("broker refused a message; the outbox relay will publish it",
                                   extra={"outbox_id": row.id, "error": str(exc)})  # fmt: skip
                self.handled += 1
                mark_at = min(mark_at, time.monotonic() + self.MARK_EVERY_S)
            if time.monotonic() >= mark_at:
                self._mark(outcome)
                outcome, mark_at = _Outcome(), float("inf")
        self._mark(outcome)

    def _mark(self, outcome: _Outcome) -> None:
        try:
            outcome.record(self.sessions)
        except Exception:  # NOTE: the claims run out and the relay publishes them again
            logger.warning("could not mark published outbox rows", exc_info=True)

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
