"""SQLite's writers in one process queue on the process's writer lock, which every way a
transaction can end lets go of (a leak would stop every later writer of the process)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from flotilla.core import _database
from flotilla.core._database import make_engine

pytestmark = pytest.mark.unit


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    monkeypatch.setattr(_database, "WRITER_WAIT_S", 2.0)  # a leak fails in 2 s, not 30
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}", trace=False)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE counts (n INTEGER NOT NULL)"))
    return engine


def _write(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO counts (n) VALUES (:n)"), {"n": n})


def _rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT n FROM counts ORDER BY n"))]


def test_every_way_a_write_ends_lets_the_next_writer_in(engine: sa.Engine) -> None:
    _write(engine, 1)  # committed

    def failing_request() -> None:
        with engine.begin() as conn:  # rolled back by the error
            conn.execute(sa.text("INSERT INTO counts (n) VALUES (99)"))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        failing_request()
    conn = engine.connect()  # begun, then returned to the pool without commit or rollback
    conn.execute(sa.text("INSERT INTO counts (n) VALUES (98)"))
    conn.close()
    conn = engine.connect()  # begun, then its connection invalidated (a driver error)
    conn.execute(sa.text("INSERT INTO counts (n) VALUES (97)"))
    conn.invalidate()
    conn.close()
    _write(engine, 2)  # would wait out WRITER_WAIT_S and fail had any of them kept the lock
    assert _rows(engine) == [1, 2]


def test_writers_of_many_threads_all_land_and_readers_never_wait_for_them(
    engine: sa.Engine,
) -> None:
    """32 threads writing 10 rows each: every row lands (none is refused as locked); a reader
    runs while a writer holds its transaction open."""
    threads = [
        threading.Thread(target=lambda t=t: [_write(engine, t * 100 + i) for i in range(10)])
        for t in range(32)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(_rows(engine)) == 320
    with engine.begin() as writer:
        writer.execute(sa.text("INSERT INTO counts (n) VALUES (-1)"))
        # NOTE: behind the writer lock, this would fail as locked after WRITER_WAIT_S
        with _database.read_only(engine).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM counts")).scalar_one() == 320


def test_a_time_limit_fired_while_an_actor_waits_to_write_leaves_the_lock_to_the_next_writer(
    engine: sa.Engine,
) -> None:
    """Dramatiq's TimeLimit raises an asynchronous exception in the worker thread. Fired while
    the actor waits for the writer lock, it is raised the moment the lock is handed to it:
    the lock must go on to the next writer, not stay taken for good (every later write of the
    process would then wait WRITER_WAIT_S and fail)."""
    broker = StubBroker()
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, time_limit=200, max_retries=0)
    def write_too_late() -> None:
        _write(engine, 7)

    holder = engine.connect()
    holder.execute(sa.text("INSERT INTO counts (n) VALUES (5)"))  # holds the writer lock
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        write_too_late.send()
        time.sleep(1.8)  # the actor waits for the lock; TimeLimit (checked every 1 s) fires
        holder.commit()  # the lock goes to the actor, whose pending exception is raised now
        holder.close()
        broker.join(write_too_late.queue_name, fail_fast=False)
        (failed,) = broker.dead_letters
        _write(engine, 8)  # the next writer gets the lock
    finally:
        worker.stop()
    assert _rows(engine) == [5, 8]
    assert failed.message_id and failed.options.get("traceback", "").count("TimeLimitExceeded")
