"""Starting, watching, restarting and stopping a set of child processes.

Each child runs in its own session (process group), so stopping it reaches the processes it
started too; its output is read line by line and printed with its name in front. Children
start in the given order, each after the previous one is ready; they stop in reverse order,
SIGTERM first, SIGKILL after the grace period.

A child that exits on its own after it was ready is restarted, as the kubelet restarts a
container: after 1 s, then 2 s, 4 s… up to a cap (CrashLoopBackOff), the delay starting over
once a run lasted long enough to count as healthy. Every other child keeps serving meanwhile;
only :meth:`Supervisor.stop` ends them. A child started with ``restart=False`` (a worker
pool's replica) is only marked exited: its pool replaces it (see :mod:`._pools`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.text import Text

from ._process_spec import ProcessSpec

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

ChildState = Literal["starting", "running", "restarting", "exited", "stopping"]


class StartError(RuntimeError):
    """A child did not start or did not become ready."""


class StartInterrupted(StartError):
    """A stop was asked for (Ctrl-C, SIGTERM) while a child was starting."""


@dataclass(frozen=True)
class RestartPolicy:
    """How long to wait before restarting a child that died: the kubelet's back-off.

    Args:
        initial_s: the first delay.
        cap_s: the longest delay (the delay doubles after every crash up to it).
        healthy_after_s: a run at least this long resets the delay to ``initial_s``.
    """

    initial_s: float = 1.0
    cap_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay(self, crashes: int) -> float:
        """The delay before restart number ``crashes`` of a crash loop (1, 2, …)."""
        return float(min(self.cap_s, self.initial_s * 2 ** max(0, crashes - 1)))

    def crashes_after(self, crashes: int, ran_s: float) -> int:
        """The crash count once a run of ``ran_s`` seconds ended (a healthy run resets it)."""
        return 1 if ran_s >= self.healthy_after_s else crashes + 1


def describe_exit(code: int) -> str:
    """``code 1``, or ``code -9 (SIGKILL)`` for a child a signal ended."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"code {code} ({signal.Signals(-code).name})"
    return f"code {code}"


@dataclass
class Child:
    """A started process, with the thread that prints its output and its restart record."""

    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    pump: threading.Thread
    started_at: float = field(default_factory=time.monotonic)
    state: ChildState = "starting"
    restarts: int = 0
    crashes: int = 0  # consecutive short runs, for the back-off
    last_exit_code: int | None = None
    restart_at: float | None = None

    def summary(self, now: float) -> dict[str, Any]:
        """What ``flotilla status`` shows of this process."""
        alive = self.process.poll() is None
        return {
            "name": self.spec.name,
            "pid": self.process.pid if alive else None,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "uptime_s": round(now - self.started_at, 1) if alive else 0.0,
            "restart_in_s": (
                round(max(0.0, self.restart_at - now), 1)
                if self.state == "restarting" and self.restart_at is not None
                else None
            ),
            "pool": self.spec.queue,
            "metrics_url": self.spec.metrics_url,
        }


class Supervisor:
    """Runs children in order, restarts those that die, stops them all in reverse, once."""

    def __init__(
        self,
        console: Console,
        *,
        grace_period_s: float = 15.0,
        ready_timeout_s: float = 60.0,
        stopping: threading.Event | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        self.console = console
        self.grace_period_s, self.ready_timeout_s = grace_period_s, ready_timeout_s
        self.restart_policy = restart_policy or RestartPolicy()
        # NOTE: set from a signal handler; a child still starting gives up at once.
        self.stopping = stopping or threading.Event()
        self.children: list[Child] = []
        self.retiring: list[Child] = []
        self._lock = threading.Lock()
        self._width = 12
        self._colours = itertools.cycle(COLOURS)
        self._colour_of: dict[str, str] = {}

    def _pump(self, name: str, colour: str, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode(errors="replace").rstrip()
            prefix = Text(f"{name:<{self._width}} | ", style=colour)
            self.console.print(prefix + Text(line), soft_wrap=True, highlight=False)

    def _spawn(self, spec: ProcessSpec) -> tuple[subprocess.Popen[bytes], threading.Thread]:
        self._width = max(self._width, len(spec.name))
        colour = self._colour_of.setdefault(spec.name, next(self._colours))
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
        return process, pump

    def start(self, spec: ProcessSpec) -> Child:
        """Start one child and wait until it is ready (or finished, for a one-shot).

        Raises:
            StartInterrupted: a stop was asked for meanwhile (the child is stopped with the rest).
            StartError: it exited early, failed, or was not ready in time.
        """
        (child,) = self.start_together([spec])
        return child

    def start_together(self, specs: list[ProcessSpec]) -> list[Child]:
        """Start every child of ``specs`` at once, then wait until each is ready (one-shots:
        finished), in order.

        PERF: a Python service spends seconds importing its libraries; started one after the
        other, the platform took ~50 s to be ready on two cores, together ~20 s.

        Raises:
            StartInterrupted: a stop was asked for meanwhile (the children are stopped with
                the rest).
            StartError: one exited early, failed, or was not ready in time.
        """
        children: list[Child] = []
        for spec in specs:
            for earlier in children:
                if earlier.spec.name in spec.after:
                    self._until_ready(earlier)
            if self.stopping.is_set():
                raise StartInterrupted(f"stopped before {spec.name} started")
            process, pump = self._spawn(spec)
            child = Child(spec, process, pump)
            with self._lock:
                self.children.append(child)
            children.append(child)
        for child in children:
            self._until_ready(child)
        return children

    def _until_ready(self, child: Child) -> None:
        spec, process = child.spec, child.process
        if child.state == "running":
            return
        if spec.oneshot:
            self._await_exit(child)
            return
        deadline = time.monotonic() + self.ready_timeout_s
        while spec.ready is not None and not spec.ready():
            if self.stopping.is_set():
                raise StartInterrupted(f"stopped while {spec.name} was starting")
            if process.poll() is not None:
                raise StartError(
                    f"{spec.name} exited with {describe_exit(process.returncode)} "
                    "before it was ready (see its log lines above)"
                )
            if time.monotonic() > deadline:
                raise StartError(f"{spec.name} was not ready after {self.ready_timeout_s:.0f} s")
            time.sleep(0.1)
        child.state = "running"
        if spec.ready is not None:
            self._say(f"{spec.name} ready (pid {process.pid})")

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
            child.state = "stopping"
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

    def forget(self, child: Child) -> None:
        """Drop an exited child from the books (its pool has replaced it)."""
        with self._lock:
            if child in self.children:
                self.children.remove(child)
        self._signal(child, signal.SIGKILL)  # NOTE: grandchildren it may have left behind

    def tend(self, now: float | None = None) -> None:
        """Notice children that died and restart those whose back-off has passed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            children = list(self.children)
        for child in children:
            if self.stopping.is_set():
                return
            if child.spec.oneshot:
                continue
            if child.state in ("starting", "running") and child.process.poll() is not None:
                self._died(child, now)
            elif (
                child.state == "restarting"
                and child.restart_at is not None
                and now >= child.restart_at
            ):
                self._restart(child, now)

    def _died(self, child: Child, now: float) -> None:
        code = child.process.returncode
        child.last_exit_code = code
        child.pump.join(1)  # NOTE: its last words are printed before the verdict
        if not child.spec.restart:
            child.state = "exited"
            self._say(f"{child.spec.name} exited with {describe_exit(code)}; its pool replaces it")
            return
        policy = self.restart_policy
        child.crashes = policy.crashes_after(child.crashes, now - child.started_at)
        delay = policy.delay(child.crashes)
        child.state, child.restart_at = "restarting", now + delay
        self._say(
            f"{child.spec.name} exited with {describe_exit(code)}; "
            f"restarting it in {delay:g} s (restart {child.restarts + 1})"
        )

    def _restart(self, child: Child, now: float) -> None:
        self._signal(child, signal.SIGKILL)  # NOTE: what the dead one left in its group
        try:
            child.process, child.pump = self._spawn(child.spec)
        except OSError as exc:
            child.crashes += 1
            child.restart_at = now + self.restart_policy.delay(child.crashes)
            self._say(f"{child.spec.name} could not be restarted: {exc}")
            return
        child.restarts += 1
        child.started_at, child.restart_at, child.state = now, None, "starting"
        if child.spec.ready is None:
            child.state = "running"
            return
        threading.Thread(target=self._await_ready, args=(child, child.process), daemon=True).start()

    def _await_ready(self, child: Child, process: subprocess.Popen[bytes]) -> None:
        """After a restart: ``running`` once the child answers its readiness check again."""
        ready = child.spec.ready
        assert ready is not None
        while not self.stopping.is_set() and process.poll() is None:
            if ready():
                if child.process is process and child.state == "starting":
                    child.state = "running"
                    self._say(f"{child.spec.name} is ready again")
                return
            time.sleep(0.2)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every supervised process, in start order, as ``flotilla status`` shows it."""
        now = time.monotonic()
        with self._lock:
            children = list(self.children)
        return [child.summary(now) for child in children]

    def watch(self, poll_s: float = 0.2) -> None:
        """Tend the children until a stop is asked for."""
        while not self.stopping.wait(poll_s):
            self.tend()

    def stop(self) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:
            children = list(reversed(self.children)) + list(self.retiring)
            self.children, self.retiring = [], []
        for child in children:
            child.state = "stopping"
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

    def _say(self, message: str) -> None:
        self.console.print(f"flotilla: {message}", markup=False, soft_wrap=True)

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signum)
