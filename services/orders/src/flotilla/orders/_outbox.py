"""The outbox relay: publishes what the database says was promised.

Runs as a thread in every orders process. A row is marked published only after the broker
took the message, so a broker outage delays messages but never loses them; on PostgreSQL
``SKIP LOCKED`` lets several replicas relay without publishing a row twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract
from sqlalchemy.orm import Session, sessionmaker

from flotilla.core import BrokerUnavailable

from ._orders import pending_outbox, utcnow

logger = logging.getLogger(__name__)


def publish_pending(
    *, sessions: sessionmaker[Session], broker: dramatiq.Broker, limit: int = 100
) -> int:
    """Publish up to ``limit`` outbox rows; returns how many were published.

    Raises:
        BrokerUnavailable: the broker refused; the rows stay unpublished.
    """
    published = 0
    failure: BrokerUnavailable | None = None
    with sessions.begin() as session:
        for row in pending_outbox(session=session, limit=limit):
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=row.queue,
                actor_name=row.actor,
                args=(row.payload,),
                kwargs={},
                options={},
            )
            token = otel_context.attach(extract(row.trace_context or {}))
            try:
                broker.declare_queue(row.queue)
                broker.enqueue(message)
            except Exception as exc:  # redis/pika errors: keep the row, try again later
                row.attempts += 1
                failure = BrokerUnavailable(f"could not publish to {row.queue!r}: {exc}")
                failure.__cause__ = exc
                break
            finally:
                otel_context.detach(token)
            row.published_at = utcnow()
            row.attempts += 1
            published += 1
    # NOTE: rows published before the failure are committed as published, so nothing is sent
    # twice because a later row failed.
    if failure is not None:
        raise failure
    return published


class OutboxRelay:
    """Publishes pending outbox rows every ``interval_s`` until :meth:`stop`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        broker: dramatiq.Broker,
        interval_s: float = 0.2,
        batch: int = 100,
    ) -> None:
        self.sessions, self.broker = sessions, broker
        self.interval_s, self.batch = interval_s, batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._broker_down = False

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Publish now instead of at the next tick (a new order was just stored)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
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
            self._wake.wait(self.interval_s if not self._broker_down else 1.0)
            self._wake.clear()
