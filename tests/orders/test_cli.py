"""``python -m flotilla.orders``: the commands an operator (or ``flotilla up``) runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def run_orders(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotilla.orders", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_creates_the_sqlite_folder_and_the_schema_and_can_run_again(
    tmp_path: Path,
) -> None:
    database = tmp_path / "not" / "yet" / "orders.db"
    env = {"FLOTILLA_ORDERS_DATABASE_URL": f"sqlite:///{database}", "OTEL_SDK_DISABLED": "true"}
    first = run_orders("migrate", env=env)
    again = run_orders("migrate", env=env)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    finally:
        engine.dispose()
    assert {"orders", "idempotency_keys", "outbox"} <= tables
    assert journal == "wal"


def test_an_unknown_command_prints_the_usage_and_fails() -> None:
    answer = run_orders("serve-everything", env={})
    assert answer.returncode == 2
    assert "api|worker|migrate" in answer.stderr
