"""SQLAlchemy engines for SQLite (local) and PostgreSQL (cluster) with the same behaviour.

On PostgreSQL a process never holds more connections than its pool's size, fixed from its own
concurrency (:func:`pool_size_for`): a thread that finds every connection taken waits for one
(up to ``POOL_WAIT_S``) instead of opening another, so the sum over every replica at its
maximum is a number the chart can check against the server's ``max_connections`` (the
connection budget, charts/flotilla/templates/_budget.tpl). Each connection names its process
(``application_name``: the service, host and pid) in ``pg_stat_activity``.

SQLite gets WAL (readers never block the writer), a busy timeout, and ``BEGIN IMMEDIATE`` for
every transaction: a writer takes the write lock when it starts instead of failing with
``database is locked`` when it upgrades a read lock, so concurrent requests queue up the way
row locks make them queue on PostgreSQL. Within a process the writers queue on a lock of their
own before ``BEGIN IMMEDIATE``, handed over the moment the holder commits, rather than in
SQLite's busy handler, which polls the lock with sleeps of 1 to 100 ms.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from ._statements import record_db_operations

READ_ONLY = "flotilla_read_only"
#: How long a writer waits for the process's writer lock, as ``PRAGMA busy_timeout`` for
#: SQLite's own lock: then it fails with "database is locked".
WRITER_WAIT_S = 30.0
_writer_locks: dict[str, WriterLock] = {}


class WriterLock:
    """The SQLite writers' lock of a process: FIFO, and owned by a token (the connection).

    The thread that hands the lock over records the next owner, so a waiter never has a
    moment where it holds the lock unrecorded. That matters because Dramatiq's ``TimeLimit``
    raises an asynchronous exception in a worker thread: with a plain ``Lock``, one raised
    right after ``acquire`` returned and before the holder was recorded left the lock taken
    for good, and every later writer of the process waited 30 s and failed. Here the waiter's
    cleanup calls :meth:`release` with its token, which gives back a lock it was granted as
    well as a place in the queue it was still waiting in.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._owner: object | None = None
        self._waiting: dict[object, threading.Event] = {}  # insertion order: FIFO

    def acquire(self, owner: object, timeout: float) -> bool:
        """Take the lock for ``owner``; False if it is still taken after ``timeout`` s."""
        with self._guard:
            if self._owner is None and not self._waiting:
                self._owner = owner
                return True
            granted = self._waiting[owner] = threading.Event()
        if granted.wait(timeout):
            return True
        with self._guard:
            if self._owner == owner:
                return True  # handed over just as the wait ended
            self._waiting.pop(owner, None)
            return False

    def release(self, owner: object) -> None:
        """``owner`` is done: its lock goes to the next waiter, or its wait is given up. A
        no-op for an owner that neither holds nor waits (a reader, a second release)."""
        with self._guard:
            if self._owner != owner:
                self._waiting.pop(owner, None)
                return
            if self._waiting:
                following = next(iter(self._waiting))
                self._owner = following
                self._waiting.pop(following).set()
            else:
                self._owner = None


#: How long a thread waits for one of the pool's connections before it fails.
POOL_WAIT_S = 30.0


def pool_size_for(threads: int, *, serves_http: bool) -> int:
    """The connections a process may hold: one per thread that may hold a transaction (its
    request or worker threads), one for its background thread (the outbox relay, the
    reservation sweeper) and, for an HTTP service, one for its readiness check, which runs
    beside the request threads. The chart's connection budget counts the same."""
    return threads + (2 if serves_http else 1)


def application_name(service: str) -> str:
    """How a process' connections are named in ``pg_stat_activity`` (at most 63 bytes)."""
    return f"{service} {socket.gethostname()} {os.getpid()}"[:63]


def is_sqlite(url: str | sa.URL) -> bool:
    """Whether ``url`` names a SQLite database."""
    return sa.make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str, *, pool_size: int = 2, trace: bool = True, service: str = "flotilla"
) -> sa.Engine:
    """An engine for ``url``; the parent folder of a SQLite file is created.

    Args:
        url: ``sqlite:///var/orders.db`` or ``postgresql+psycopg://user@host/db``.
        pool_size: the most connections it holds on PostgreSQL (:func:`pool_size_for`);
            one more is never opened: a caller waits for a free one.
        trace: record its statements (``_statements.py``: the current span's attributes,
            a span of their own when slow or failed, the duration metric).
        service: the name its PostgreSQL connections carry (:func:`application_name`).
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        lock = _writer_locks.setdefault(
            str(Path(parsed.database or ":memory:").resolve()), WriterLock()
        )
        _sqlite_like_a_server(engine, lock)
    else:
        engine = sa.create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,  # NOTE: the budget's guarantee: never a connection past the pool
            pool_timeout=POOL_WAIT_S,
            pool_pre_ping=True,
            connect_args={"application_name": application_name(service)},
        )
    if trace:
        record_db_operations(engine)
    return engine


def _sqlite_like_a_server(engine: sa.Engine, writers: WriterLock) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # NOTE: let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        # PERF: readers (see read_only) take no write lock, so WAL lets them run side by side.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        # PERF: on the driver's own connection, so no statement span per transaction (a BEGIN
        # span each, 8 an order, which nobody reads; PostgreSQL's begin has none either).
        driver: Any = connection.connection.driver_connection
        if read_only:
            driver.execute("BEGIN")
            return
        # NOTE: all inside the try: an asynchronous exception (Dramatiq's TimeLimit) may come
        # at any bytecode, and the lock knows whether this connection was granted it
        try:
            if not writers.acquire(id(driver), timeout=WRITER_WAIT_S):
                raise sqlite3.OperationalError("database is locked (by a writer of this process)")
            driver.execute("BEGIN IMMEDIATE")
        except BaseException:
            writers.release(id(driver))
            raise

    def _release(driver: Any) -> None:
        writers.release(id(driver))

    # NOTE: the lock is let go once the transaction is over, whichever way it ends: commit,
    # rollback (the pool's reset on return included) or a closed connection.
    dialect: Any = engine.dialect
    for name in ("do_commit", "do_rollback", "do_close"):
        _release_after(dialect, name, _release)


def _release_after(dialect: Any, name: str, release: Callable[[Any], None]) -> None:
    end = getattr(dialect, name)

    def ending(dbapi_connection: Any) -> None:
        try:
            end(dbapi_connection)
        finally:
            release(getattr(dbapi_connection, "driver_connection", dbapi_connection))

    setattr(dialect, name, ending)


def _use_wal(cursor: Any, *, patience_s: float = 30.0) -> None:
    """Put the database in WAL mode (it stays so: the mode is stored in the file).

    Switching needs the database to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when another connection is opening the same fresh file (replicas
    migrating together); so the switch is retried until ``patience_s`` has passed.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_only(engine: sa.Engine) -> sa.Engine:
    """The same engine for transactions that only read.

    On SQLite they begin with a plain ``BEGIN`` instead of ``BEGIN IMMEDIATE``, so they never
    queue behind writers; on PostgreSQL nothing changes.
    """
    return engine.execution_options(**{READ_ONLY: True})


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (answers are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def schema_check(engine: sa.Engine, column: Any) -> Callable[[], None]:
    """A readiness check that reads one row of ``column``'s table on a read-only connection.

    Reading a real table (not just ``SELECT 1``) also catches an unmigrated database; a
    read-only connection never queues behind SQLite's writers.
    """
    reader = read_only(engine)

    def database() -> None:
        with reader.connect() as connection:
            connection.execute(sa.select(column).limit(1))

    return database
