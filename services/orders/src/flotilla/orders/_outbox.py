"""The outbox relay: publishes what the database says was promised.

Runs as a thread in every orders process. A row is marked published only after the broker
took the message, so a broker outage delays messages but never loses them; on PostgreSQL
``SKIP LOCKED`` lets several replicas relay without publishing a row twice (on SQLite every
writer begins with ``BEGIN IMMEDIATE``, so relays take turns). orders-api's relay also re-announces
orders that stay accepted too long, in case the broker lost their message after taking it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
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
    send_message,
)

from ._orders import add_outbox, pending_outbox, stalled_orders, utcnow
from .models import OutboxMessage

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("flotilla.orders")

#: The messages orders writes to its outbox, by the actor that takes them.
SCHEMAS: dict[str, type[QueueMessage]] = {
    schema.actor: schema for schema in (FulfilOrder, OrderConfirmation)
}


def _stored_message(row: OutboxMessage) -> QueueMessage | None:
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
        BrokerUnavailable: the broker refused; the rows stay unpublished.
    """
    published = 0
    failure: BrokerUnavailable | None = None
    # NOTE: the polling itself is not traced, or every tick would be a trace of its own.
    with suppress_instrumentation(), sessions.begin() as session:
        for row in pending_outbox(session=session, limit=limit):
            message = _stored_message(row)
            if message is None:
                continue
            # NOTE: the stored context makes the PRODUCER span a child of the request (or
            # message) that wrote the row, however long ago that was; it starts from an empty
            # context, so the broker calls under that span are traced again.
            stored = extract(row.trace_context or {}, context=otel_context.Context())
            token = otel_context.attach(stored)
            row.attempts += 1
            try:
                send_message(broker, message)
            except BrokerUnavailable as exc:
                failure = exc
                break
            finally:
                otel_context.detach(token)
            row.published_at = utcnow()
            published += 1
    # NOTE: rows published before the failure are committed as published, so nothing is sent
    # twice because a later row failed.
    if failure is not None:
        raise failure
    return published


def redrive_stalled_orders(
    *, sessions: sessionmaker[Session], older_than_s: float, limit: int = 100
) -> list[str]:
    """Queue ``FulfilOrder`` again for orders still accepted after ``older_than_s``.

    The outbox guarantees a message reached the broker, not that it survived there (a Redis
    without persistence that restarts forgets its queues). Re-announcing is safe because
    ``fulfil_order`` is idempotent; this is what makes "never a lost accepted order" hold.
    Returns the ids of the orders re-announced.
    """
    untouched_since = utcnow() - timedelta(seconds=older_than_s)
    redriven: list[str] = []
    # NOTE: the periodic check makes no trace; each order found stalled starts one of its own,
    # which the PRODUCER span of its new message continues.
    with suppress_instrumentation(), sessions.begin() as session:
        for order in stalled_orders(session=session, untouched_since=untouched_since, limit=limit):
            with tracer.start_as_current_span(
                "redrive order",
                context=otel_context.Context(),
                attributes={"flotilla.order.id": order.id},
            ):
                order.updated_at = utcnow()
                add_outbox(session=session, message=FulfilOrder(order_id=uuid.UUID(order.id)))
            redriven.append(order.id)
    if redriven:
        logger.warning("stalled orders announced again", extra={"orders": redriven})
    return redriven


class OutboxRelay:
    """Publishes pending outbox rows every ``interval_s`` until :meth:`stop`.

    With ``redrive_after_s``, it also re-announces orders that stayed accepted that long
    (see :func:`redrive_stalled_orders`), checking a few times per period.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        broker: dramatiq.Broker,
        interval_s: float = 0.2,
        outage_interval_s: float = 1.0,
        batch: int = 100,
        redrive_after_s: float | None = None,
    ) -> None:
        self.sessions, self.broker = sessions, broker
        self.interval_s, self.outage_interval_s, self.batch = interval_s, outage_interval_s, batch
        self.redrive_after_s = redrive_after_s
        self._next_redrive = 0.0
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

    def _redrive_due(self) -> bool:
        if self.redrive_after_s is None or self._broker_down:
            return False
        now = time.monotonic()
        if now < self._next_redrive:
            return False
        self._next_redrive = now + max(self.redrive_after_s / 4, self.interval_s)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.redrive_after_s is not None and self._redrive_due():
                    redrive_stalled_orders(
                        sessions=self.sessions, older_than_s=self.redrive_after_s, limit=self.batch
                    )
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
