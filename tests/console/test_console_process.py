"""``python -m flotilla.console api`` as a real process, configured like ``flotilla up`` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.console.test_trace_api import one_span_export
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def console_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = tmp_path / "var" / "console.db"
    env = {
        **os.environ,
        "FLOTILLA_CONSOLE_PORT": str(port),
        "FLOTILLA_CONSOLE_DATABASE_PATH": str(database),
        # What every other process gets: export to the console, soon.
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    env.pop("OTEL_SDK_DISABLED", None)
    process = subprocess.Popen([sys.executable, "-m", "flotilla.console", "api"], env=env)
    try:
        wait_for(lambda: _ready(url))
        yield url, database
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def test_the_console_serves_from_its_database_and_never_stores_its_own_spans(
    console_process: tuple[str, Path],
) -> None:
    """Were it traced, each export would make a console span, exported to itself, and so on."""
    url, database = console_process
    assert database.exists()  # its folder was created
    for trace in (1, 2, 3):
        answer = httpx.post(
            f"{url}/v1/traces",
            content=one_span_export(trace, time.time_ns(), "edge"),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200
    time.sleep(0.5)  # ten times the batch delay its own exporter would have
    listing = httpx.get(f"{url}/api/traces", params={"limit": 100}).json()["traces"]
    assert sorted(t["root_service"] for t in listing) == ["edge", "edge", "edge"]
