"""The sweeper: held reservations whose TTL passed go back on the shelf.

A thread in every inventory-api replica, every ``sweep_interval_s``; replicas on PostgreSQL
skip the rows another one is sweeping (``SKIP LOCKED``), SQLite's single writer makes them
take turns. The sweep itself is not traced (a trace per tick would bury the requests); each
reservation it expires is logged.
"""

from __future__ import annotations

import logging
import threading

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy.orm import Session, sessionmaker

from ._stock import expire_due

logger = logging.getLogger(__name__)


class ReservationSweeper:
    """Expires due reservations every ``interval_s`` seconds until :meth:`stop` (0: never)."""

    def __init__(self, sessions: sessionmaker[Session], *, interval_s: float) -> None:
        self.sessions, self.interval_s = sessions, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reservation-sweeper", daemon=True)
        #: reservations expired by this sweeper so far
        self.expired = 0

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    #: reservations expired per transaction: SQLite has one writer, so a sweep takes the
    #: write lock in short turns instead of one long one that every request waits behind
    BATCH = 25

    def sweep(self) -> int:
        """One pass (at most :attr:`BATCH` reservations); returns how many it expired."""
        with suppress_instrumentation(), self.sessions.begin() as session:
            expired = expire_due(session=session, limit=self.BATCH)
        if expired:
            self.expired += expired
            logger.info("expired reservations given back", extra={"reservations": expired})
        return expired

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                while self.sweep() >= self.BATCH and not self._stop.is_set():
                    pass  # NOTE: a backlog goes in one tick, a batch per transaction
            except Exception:  # the next tick tries again; a sweep must not kill the thread
                logger.exception("reservation sweep failed; retrying")
