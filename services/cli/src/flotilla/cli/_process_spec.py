"""What one child process of the local platform is: its command, environment, readiness, and
whether it is a one-shot job, a restarted service or a pool's replica."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ProcessSpec:
    """One child: its name, command line, extra environment and readiness check."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    oneshot: bool = False  # runs to completion (a migration) before the services start
    queue: str | None = None  # a worker consuming this queue: run as an autoscaled pool
    restart: bool = True  # False: someone else (its pool) replaces it when it dies
    #: processes started with it that must be ready before this one starts
    after: tuple[str, ...] = ()

    @property
    def metrics_port_variable(self) -> str | None:
        """The variable that tells the process where to serve its metrics: its component's
        ``FLOTILLA_<COMPONENT>_METRICS_PORT`` (the edge: its admin port)."""
        return next((k for k in self.env if k.endswith(("_METRICS_PORT", "EDGE_ADMIN_PORT"))), None)

    @property
    def metrics_host(self) -> str:
        """The address it serves them on (the ``_HOST`` beside the port variable)."""
        variable = self.metrics_port_variable or ""
        return self.env.get(variable.removesuffix("_PORT") + "_HOST", "127.0.0.1")

    @property
    def metrics_url(self) -> str | None:
        """Where the process serves its metrics, or ``None``."""
        variable = self.metrics_port_variable
        if variable is None:
            return None
        return f"http://{self.metrics_host}:{self.env[variable]}/metrics"
