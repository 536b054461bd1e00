"""A migration waits for a database that is not there yet (a first install starts the
database and the pods together), says what it waits for, and gives up with one line when
waiting cannot help or has lasted long enough. Real PostgreSQL, reached late through a TCP
proxy that starts listening only after a while."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from flotilla.core import DatabaseUnavailable, make_engine, migrate_database, wait_for_database
from flotilla.orders._database import VERSIONS
from tests.support.ports import free_port
from tests.support.slow_proxy import slow_proxy

pytestmark = pytest.mark.integration


def _via(url: str, port: int) -> str:
    return sa.make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def test_a_migration_waits_for_a_database_that_comes_late_and_says_so(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    target = urlsplit(postgres_url.replace("+psycopg", "")).port or 5432
    opened, done = threading.Event(), threading.Event()

    def open_late() -> None:
        time.sleep(3)
        with slow_proxy(target, port=port):
            opened.set()
            done.wait(60)

    threading.Thread(target=open_late, daemon=True).start()
    started = time.monotonic()
    try:
        with caplog.at_level(logging.INFO, logger="flotilla.core._migrations"):
            migrate_database(_via(postgres_url, port), VERSIONS)
    finally:
        done.set()
    assert opened.is_set() and time.monotonic() - started >= 3
    waiting = [r.getMessage() for r in caplog.records if "waiting for the database" in r.message]
    assert 1 <= len(waiting) <= 2, waiting  # said once (again only if the reason changes)
    assert f"127.0.0.1:{port}" in waiting[0] and "giving up after 300 s" in waiting[0]
    assert any("takes connections after" in r.message for r in caplog.records)
    with sa.create_engine(postgres_url).connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 0


def test_a_database_that_never_comes_is_given_up_after_the_patience_with_the_reason() -> None:
    engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/db", trace=False)
    sleeps: list[float] = []
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="took no connection in 2 s") as caught:
        wait_for_database(engine, patience_s=2, sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    assert time.monotonic() - started < 10
    assert "refused" in str(caught.value).lower() or "connect" in str(caught.value).lower()
    assert sleeps[:3] == [0.5, 1.0, 2.0][: len(sleeps[:3])]  # growing pauses, not a spin


def test_a_refusal_waiting_cannot_cure_fails_at_once(postgres_url: str) -> None:
    missing = sa.make_url(postgres_url).set(database="no_such_database_here")
    engine = make_engine(missing.render_as_string(hide_password=False), trace=False)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        wait_for_database(engine)
    assert time.monotonic() - started < 5


def test_the_migrate_command_says_in_one_line_why_the_database_never_came(
    postgres_url: str,
) -> None:
    missing = sa.make_url(postgres_url).set(database="no_such_database_here")
    env = {
        **os.environ,
        "FLOTILLA_PAYMENTS_DATABASE_URL": missing.render_as_string(hide_password=False),
    }
    done = subprocess.run(
        [sys.executable, "-m", "flotilla.payments", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith("payments: the database at 127.0.0.1:5432/no_such")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
