"""A throwaway PostgreSQL server of the test's own, on a free port, with the settings a test
needs (a small ``max_connections``): the machine's PostgreSQL binaries, ``initdb`` into a
temporary folder, trust authentication on 127.0.0.1. As root (CI), the server runs as the
``postgres`` user, as PostgreSQL refuses to run as root. Absent binaries: skip locally, fail
under ``CI=true``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.services import in_ci


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class ThrowawayPostgres:
    folder: Path
    port: int

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if text in line]


@contextmanager
def throwaway_postgres(**settings: str | int) -> Iterator[ThrowawayPostgres]:
    """A running server with ``settings`` (``max_connections=20``…); stopped and removed after."""
    binaries = _binaries()
    if binaries is None:
        message = "no PostgreSQL server binaries (initdb) here: apt-get install postgresql"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="flotilla-pg-"))
    data = folder / "data"
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    run = lambda *argv: subprocess.run([*as_user, *argv], check=True, capture_output=True)  # noqa: E731
    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    server = ThrowawayPostgres(folder, free_port())
    options = [
        f"-c port={server.port}",
        "-c listen_addresses=127.0.0.1",
        f"-c unix_socket_directories={folder}",
    ]
    options += [f"-c {key}={value}" for key, value in settings.items()]
    run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(server.log),
        "-o",
        " ".join(options),
        "-w",
        "start",
    )
    try:
        yield server
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
