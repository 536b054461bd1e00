"""The platform for chaos: the real ``flotilla up`` with small pools and short timers, its
broker a Redis server of its own (so a test may stop it), and a killer to point at it."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from flotilla.cli import BrokerChoice, CliSettings, Platform, ProcessSpec, platform_specs
from tests.support.local_platform import FlotillaUp
from tests.support.redis_server import ThrowawayRedis, throwaway_redis

#: What every chaos platform runs with: two replicas per pool, quick restarts (a run of 5 s
#: counts as healthy: the kills here are not crash loops), reservations that expire in 30 s,
#: lost messages announced again after 10 s.
CHAOS_ENV = {
    "FLOTILLA_CLI_POOL_MIN": "2",
    "FLOTILLA_CLI_POOL_MAX": "4",
    "FLOTILLA_CLI_PAYMENT_LATENCY_MS": "20",
    "FLOTILLA_CLI_RESTART_INITIAL_S": "0.5",
    "FLOTILLA_CLI_RESTART_CAP_S": "4",
    "FLOTILLA_CLI_RESTART_HEALTHY_AFTER_S": "5",
    # the components' own settings: flotilla up hands its environment to every process
    "FLOTILLA_INVENTORY_RESERVATION_TTL_S": "30",
    "FLOTILLA_ORDERS_REDRIVE_AFTER_MS": "10000",
    "FLOTILLA_CLI_GRACE_PERIOD_S": "5",
}


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """The platform's Redis, with an append-only file as the chart runs it: a stop and a start
    is a restart (what it held is still there), not the loss of its data."""
    (tmp_path / "redis").mkdir()
    with throwaway_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def chaos_platform(chaos_redis: ThrowawayRedis, tmp_path: Path) -> Iterator[FlotillaUp]:
    """``flotilla up`` as a separate process tree, as a user starts it."""
    running = FlotillaUp(tmp_path / "var", chaos_redis.url, env=dict(CHAOS_ENV)).start()
    yield running
    running.stop()


class _Lines(io.TextIOBase):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)


SpecsChange = Callable[[list[ProcessSpec]], list[ProcessSpec]]


@dataclass
class InProcessUp(FlotillaUp):
    """What ``flotilla up`` runs (:func:`flotilla.cli.run_platform`'s Platform), in this
    process, so a test can change the process specs (route a service through a proxy)."""

    change: SpecsChange = field(default=lambda specs: specs)

    def start(self) -> InProcessUp:
        settings = CliSettings(
            var_dir=self.var_dir,
            redis_url=self.redis_url,
            **{f"{name.replace('-', '_')}_port": port for name, port in self.ports.items()},
            **{
                k.removeprefix("FLOTILLA_CLI_").lower(): v
                for k, v in self.env.items()
                if k.startswith("FLOTILLA_CLI_")
            },
        )
        # NOTE: what flotilla up would hand every process from its environment
        inherited = {k: v for k, v in self.env.items() if not k.startswith("FLOTILLA_CLI_")}

        def specs(s: CliSettings, broker: BrokerChoice, key: str) -> list[ProcessSpec]:
            given = platform_specs(s, broker, key)
            return self.change([replace(p, env={**inherited, **p.env}) for p in given])

        console = Console(file=_Lines(self.log), width=300, color_system=None)
        self.running = Platform(settings, console=console, specs_for=specs)
        self.running.start()
        self._watch = threading.Thread(target=self.running.wait, daemon=True)
        self._watch.start()
        self.api_key = self.running.api_key
        return self

    def stop(self) -> None:
        self.running.stop()
        self._watch.join(30)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The chaos tests' counts at the end of every run (docs/reliability.md records them)."""
    from tests.chaos.books import RESULTS

    if RESULTS:
        terminalreporter.section("chaos: what was counted")
        for line in RESULTS:
            terminalreporter.write_line(line)
