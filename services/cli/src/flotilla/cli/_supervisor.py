"""Starting, watching and stopping a set of child processes.

Each child runs in its own session (process group), so stopping it reaches the processes it
started too; its output is read line by line and printed with its name in front. Children
start in the given order, each after the previous one is ready; they stop in reverse order,
SIGTERM first, SIGKILL after the grace period.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

COLOURS = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
)


class StartError(RuntimeError):
    """A child did not start or did not become ready."""


class StartInterrupted(StartError):
    """A stop was asked for (Ctrl-C, SIGTERM) while a child was starting."""


@dataclass
class ProcessSpec:
    """One child: its name, command line, extra environment and readiness check."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    oneshot: bool = False  # runs to completion (a migration) before the next one starts
    queue: str | None = None  # a worker consuming this queue: run as an autoscaled pool


@dataclass
class Child:
    """A started process, with the thread that prints its output."""

    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    pump: threading.Thread


class Supervisor:
    """Runs children in order and stops them all, in reverse, exactly once."""

    def __init__(
        self,
        console: Console,
        *,
        grace_period_s: float = 15.0,
        ready_timeout_s: float = 60.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.console = console
        self.grace_period_s, self.ready_timeout_s = grace_period_s, ready_timeout_s
        # NOTE: set from a signal handler; a child still starting gives up at once.
        self.stopping = stopping or threading.Event()
        self.children: list[Child] = []
        self.retiring: list[Child] = []
        self._lock = threading.Lock()
        self._width = 12
        self._colours = itertools.cycle(COLOURS)

    def _pump(self, name: str, colour: str, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode(errors="replace").rstrip()
            prefix = Text(f"{name:<{self._width}} | ", style=colour)
            self.console.print(prefix + Text(line), soft_wrap=True, highlight=False)

    def start(self, spec: ProcessSpec) -> Child:
        """Start one child and wait until it is ready (or finished, for a one-shot).

        Raises:
            StartInterrupted: a stop was asked for meanwhile (the child is stopped with the rest).
            StartError: it exited early, failed, or was not ready in time.
        """
        if self.stopping.is_set():
            raise StartInterrupted(f"stopped before {spec.name} started")
        self._width = max(self._width, len(spec.name))
        colour = next(self._colours)
        # NOTE: argv comes from the platform's own specs, never from a request.
        process = subprocess.Popen(  # noqa: S603
            spec.argv,
            env={**os.environ, **spec.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pump = threading.Thread(
            target=self._pump,
            args=(spec.name, colour, process.stdout),
            name=f"log-{spec.name}",
            daemon=True,
        )
        pump.start()
        child = Child(spec, process, pump)
        with self._lock:
            self.children.append(child)
        if spec.oneshot:
            self._await_exit(child)
            return child
        deadline = time.monotonic() + self.ready_timeout_s
        while spec.ready is not None and not spec.ready():
            if self.stopping.is_set():
                raise StartInterrupted(f"stopped while {spec.name} was starting")
            if process.poll() is not None:
                raise StartError(
                    f"{spec.name} exited with code {process.returncode} "
                    "before it was ready (see its log lines above)"
                )
            if time.monotonic() > deadline:
                raise StartError(f"{spec.name} was not ready after {self.ready_timeout_s:.0f} s")
            time.sleep(0.1)
        return child

    def _await_exit(self, child: Child) -> None:
        """Wait for a one-shot (a migration) to finish; it must succeed."""
        while child.process.poll() is None:
            if self.stopping.wait(0.05):
                raise StartInterrupted(f"stopped while {child.spec.name} was running")
        child.pump.join(5)
        with self._lock:
            self.children.remove(child)
        if child.process.returncode != 0:
            raise StartError(
                f"{child.spec.name} failed with exit code {child.process.returncode} "
                "(see its log lines above)"
            )

    def retire(self, child: Child) -> None:
        """Stop one child without waiting: SIGTERM now (a worker drains), SIGKILL after grace."""
        with self._lock:
            if child in self.children:
                self.children.remove(child)
            self.retiring.append(child)
        self._signal(child, signal.SIGTERM)

        def reap() -> None:
            try:
                child.process.wait(self.grace_period_s)
            except subprocess.TimeoutExpired:
                self._signal(child, signal.SIGKILL)
                child.process.wait(5)
            self._signal(child, signal.SIGKILL)  # grandchildren, if any
            with self._lock:
                if child in self.retiring:
                    self.retiring.remove(child)

        threading.Thread(target=reap, name=f"reap-{child.spec.name}", daemon=True).start()

    def first_exited(self) -> Child | None:
        """A child that has exited on its own, if any."""
        for child in list(self.children):
            if child.process.poll() is not None:
                return child
        return None

    def watch(self, poll_s: float = 0.2) -> Child | None:
        """Block until a stop is asked for (``None``) or a child exits on its own (that child)."""
        while not self.stopping.wait(poll_s):
            exited = self.first_exited()
            if exited is not None:
                return exited
        return None

    def stop(self) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:
            children = list(reversed(self.children)) + list(self.retiring)
            self.children, self.retiring = [], []
        for child in children:
            self._signal(child, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_period_s
            while child.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.process.poll() is None:
                self.console.print(
                    f"[yellow]flotilla: {child.spec.name} ignored SIGTERM; killing it[/]"
                )
                self._signal(child, signal.SIGKILL)
                child.process.wait(5)
            # NOTE: the group may hold grandchildren that outlived their parent.
            self._signal(child, signal.SIGKILL)
            child.pump.join(2)

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signum)
