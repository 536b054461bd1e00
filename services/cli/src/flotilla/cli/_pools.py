"""Local worker pools: the operator's policy and depth readers driving real processes.

The same :func:`flotilla.operator.decide` that the operator runs in the cluster decides here;
instead of patching a Deployment, a pool starts worker processes or retires them (SIGTERM: the
worker stops consuming, finishes what it holds, requeues what it prefetched, exits). The state
of every process and pool is written to ``var/local/status.json`` for ``flotilla status``, and
every decision is a span (service ``autoscaler``, as the operator's are in a cluster) that the
console turns into its pool view.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.console import Console

from flotilla.operator import (
    DECISION_SPAN,
    DepthUnavailable,
    History,
    Observation,
    ScaleDecision,
    ScalingSpec,
    decide,
    decision_attributes,
    depth_reader,
)

from ._broker import free_port
from ._process_spec import ProcessSpec
from ._supervisor import Child, Supervisor

logger = logging.getLogger(__name__)


class WorkerPool:
    """Replicas of one worker command, started and retired on demand.

    The pool keeps ``desired`` replicas, as a Deployment keeps ``spec.replicas``: a replica
    that dies (an OOM kill, a crash) is a lost replica, replaced after the supervisor's
    back-off. The back-off belongs to the replica's slot, as a container's restart back-off
    belongs to its pod: a slot whose replicas keep dying young waits longer and longer, the
    other slots are not held back by it.
    """

    def __init__(self, template: ProcessSpec, spec: ScalingSpec, supervisor: Supervisor) -> None:
        assert template.queue is not None
        self.template, self.spec, self.supervisor = template, spec, supervisor
        self.name, self.queue = template.name, template.queue
        self.replicas: list[Child] = []
        self.desired = 0
        self.history = History()
        self.last: ScaleDecision | None = None
        self.depth: dict[str, int] = {"depth": 0, "in_flight": 0}
        self.restarts = 0
        self.last_exit_code: int | None = None
        #: slots whose replica died: (when to replace it, the slot's crash count)
        self._lost: list[tuple[float, int]] = []
        self._numbers = iter(range(1, 1_000_000))

    def _start_one(self, crashes: int = 0) -> None:
        number = next(self._numbers)
        name = self.name if number == 1 else f"{self.name}-{number}"
        replica = dataclasses.replace(
            self.template,
            name=name,
            restart=False,
            # NOTE: the worker names itself after its replica in the broker, so the pool
            # (and the operator, by pod) can tell which replica holds which messages.
            env={**self.template.env, "FLOTILLA_WORKER_NAME": name, **self._metrics_port()},
        )
        started = self.supervisor.start(replica)
        started.crashes = crashes
        self.replicas.append(started)

    def _metrics_port(self) -> dict[str, str]:
        """A port of its own for each replica's metrics, when the template serves them."""
        variable = self.template.metrics_port_variable
        if variable is None:
            return {}
        return {variable: str(free_port(self.template.metrics_host))}

    def scale_to(self, count: int, held: dict[str, int] | None = None) -> None:
        """Keep ``count`` replicas from now on: start or retire the difference.

        Args:
            count: the replicas wanted.
            held: messages each replica holds (by name); the idlest are retired first, as
                the operator's pod-deletion-cost makes Kubernetes do.
        """
        self.desired = count
        self._lost = sorted(self._lost)[: max(0, count - len(self.replicas))]
        while len(self.replicas) + len(self._lost) < count:
            self._start_one()
        if len(self.replicas) > count:
            work = held or {}
            # NOTE: stable sort: among equally idle replicas the newest goes, as before
            ranked = sorted(reversed(self.replicas), key=lambda r: work.get(r.spec.name, 0))
            for replica in ranked[: len(self.replicas) - count]:
                self.replicas.remove(replica)
                self.supervisor.retire(replica)

    def replace_lost(self, now: float) -> int:
        """Forget replicas that died, and start replacements once the back-off has passed.

        Returns:
            How many replicas died since the last call.
        """
        policy = self.supervisor.restart_policy
        lost = [r for r in self.replicas if r.process.poll() is not None]
        for replica in lost:
            self.replicas.remove(replica)
            self.supervisor.forget(replica)
            self.restarts += 1
            self.last_exit_code = replica.process.returncode
            crashes = policy.crashes_after(replica.crashes, now - replica.started_at)
            self._lost.append((now + policy.delay(crashes), crashes))
        due = [slot for slot in self._lost if slot[0] <= now]
        for slot in due:
            self._lost.remove(slot)
            if len(self.replicas) < self.desired:
                self._start_one(crashes=slot[1])
        return len(lost)

    def owns(self, child: Child) -> bool:
        return child in self.replicas

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "depth": self.depth["depth"],
            "in_flight": self.depth["in_flight"],
            "replicas": len(self.replicas),
            "desired": self.last.desired if self.last else self.desired,
            "min": self.spec.min_replicas,
            "max": self.spec.max_replicas,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "last_decision": self.last.reason if self.last else "starting",
        }


class LocalAutoscaler:
    """Polls depth every ``interval_s`` and applies the policy to each pool."""

    def __init__(
        self,
        pools: list[WorkerPool],
        broker_url: str,
        status_path: Path,
        console: Console,
        *,
        interval_s: float = 1.0,
        traces_endpoint: str | None = None,
        processes: Callable[[], list[dict[str, Any]]] | None = None,
        cpu_ceiling_percent: float = 85.0,
        cpu_busy: Callable[[], float] | None = None,
    ) -> None:
        self.pools, self.status_path, self.console = pools, status_path, console
        self.processes = processes
        self.cpu_ceiling_percent = cpu_ceiling_percent
        # NOTE: the machine's CPU share busy since the last tick (psutil's first answer is 0)
        self.cpu_busy = cpu_busy or (lambda: float(psutil.cpu_percent(interval=None)))
        self.reader = depth_reader(broker_url)
        # NOTE: a provider of its own, not the global one: the CLI traces nothing else, and a
        # test running the platform in-process keeps its own global provider.
        self.provider = TracerProvider(resource=Resource.create({"service.name": "autoscaler"}))
        if traces_endpoint:
            exporter = OTLPSpanExporter(endpoint=traces_endpoint, timeout=2)
            batches = BatchSpanProcessor(exporter, schedule_delay_millis=500)
            self.provider.add_span_processor(batches)
        self.tracer = self.provider.get_tracer("flotilla.cli.autoscaler")
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)

    def start(self) -> None:
        self.write_status()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.status_path.unlink(missing_ok=True)
        self.provider.shutdown()

    def tick(self, now: float) -> None:
        busy = self.cpu_busy()
        for pool in self.pools:
            pool.replace_lost(now)
            try:
                reading = self.reader.read([pool.queue])
                # NOTE: the pool's own count, not the live processes: a replica waiting out
                # its back-off is still wanted (as a crashed pod still counts in a Deployment).
                observation = Observation(pool.desired, reading.depth)
                pool.depth = {"depth": reading.depth.total, "in_flight": reading.depth.in_flight}
            except DepthUnavailable as exc:
                observation = Observation(pool.desired, None, broker_error=str(exc))
            with self.tracer.start_as_current_span(DECISION_SPAN) as span:
                decision = self._within_the_cpu(
                    pool, decide(pool.spec, observation, pool.history, now), busy
                )
                span.set_attributes(
                    decision_attributes(
                        autoscaler=pool.name,
                        target=pool.name,
                        queues=[pool.queue],
                        spec=pool.spec,
                        observation=observation,
                        decision=decision,
                    )
                )
            pool.history, pool.last = decision.history, decision
            if decision.desired != pool.desired:
                self.console.print(
                    f"flotilla: {pool.name} {decision.action} {decision.reason}",
                    markup=False,
                    soft_wrap=True,
                )
                pool.scale_to(decision.desired, self._held(pool, decision.desired))
        self.write_status()

    def _within_the_cpu(
        self, pool: WorkerPool, decision: ScaleDecision, busy: float
    ) -> ScaleDecision:
        """A scale-up held while the machine's CPU is saturated (at least one replica runs).

        Locally every replica shares the same cores: on a CPU that is already busy, another
        worker process adds its start-up and more contention for SQLite's write lock, and no
        throughput (measured: bench/platform_load.py, docs/benchmarks.md); the threads of the
        replicas already running wait on I/O. In a cluster the scheduler places pods on other
        nodes, so the operator has no such rule.
        """
        ceiling = self.cpu_ceiling_percent  # NOTE: 100 turns the hold off
        held = pool.desired > 0 and ceiling < 100 and busy >= ceiling
        if decision.action != "scale-up" or not held:
            return decision
        return dataclasses.replace(
            decision,
            desired=pool.desired,
            action="hold",
            reason=(
                f"{decision.reason}; held at {pool.desired}: the CPU is {busy:.0f}% busy "
                f"(ceiling {self.cpu_ceiling_percent:.0f}%), another process would not help"
            ),
        )

    def _held(self, pool: WorkerPool, desired: int) -> dict[str, int] | None:
        """Before a scale-in: the messages each replica holds (None if unknown or not needed)."""
        if desired >= len(pool.replicas):
            return None
        try:
            return self.reader.in_flight_by_pod([pool.queue])
        except DepthUnavailable:
            return None

    def write_status(self) -> None:
        body = {
            "updated_at": time.time(),
            "processes": self.processes() if self.processes else [],
            "pools": [p.status() for p in self.pools],
        }
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        temporary.replace(self.status_path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick(time.monotonic())
            except Exception:  # the platform keeps running; the next tick tries again
                logger.exception("autoscaler tick failed")
