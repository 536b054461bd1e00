"""Local worker pools: the operator's policy and depth readers driving real processes.

The same :func:`flotilla.operator.decide` that the operator runs in the cluster decides here;
instead of patching a Deployment, a pool starts worker processes or retires them (SIGTERM: the
worker stops consuming, finishes what it holds, requeues what it prefetched, exits). The state
of every pool is written to ``var/local/pools.json`` for ``flotilla status``, and every decision
is a span (service ``autoscaler``, as the operator's are in a cluster) that the console turns
into its pool view.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

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

from ._supervisor import Child, ProcessSpec, Supervisor

logger = logging.getLogger(__name__)


class WorkerPool:
    """Replicas of one worker command, started and retired on demand."""

    def __init__(self, template: ProcessSpec, spec: ScalingSpec, supervisor: Supervisor) -> None:
        assert template.queue is not None
        self.template, self.spec, self.supervisor = template, spec, supervisor
        self.name, self.queue = template.name, template.queue
        self.replicas: list[Child] = []
        self.history = History()
        self.last: ScaleDecision | None = None
        self.depth: dict[str, int] = {"depth": 0, "in_flight": 0}
        self._numbers = iter(range(1, 1_000_000))

    def scale_to(self, count: int) -> None:
        while len(self.replicas) < count:
            number = next(self._numbers)
            name = self.name if number == 1 else f"{self.name}-{number}"
            self.replicas.append(
                self.supervisor.start(dataclasses.replace(self.template, name=name))
            )
        while len(self.replicas) > count:
            self.supervisor.retire(self.replicas.pop())

    def owns(self, child: Child) -> bool:
        return child in self.replicas

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "depth": self.depth["depth"],
            "in_flight": self.depth["in_flight"],
            "replicas": len(self.replicas),
            "desired": self.last.desired if self.last else len(self.replicas),
            "min": self.spec.min_replicas,
            "max": self.spec.max_replicas,
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
    ) -> None:
        self.pools, self.status_path, self.console = pools, status_path, console
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
        for pool in self.pools:
            try:
                reading = self.reader.read([pool.queue])
                observation = Observation(len(pool.replicas), reading.depth)
                pool.depth = {"depth": reading.depth.total, "in_flight": reading.depth.in_flight}
            except DepthUnavailable as exc:
                observation = Observation(len(pool.replicas), None, broker_error=str(exc))
            with self.tracer.start_as_current_span(DECISION_SPAN) as span:
                decision = decide(pool.spec, observation, pool.history, now)
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
            if decision.desired != len(pool.replicas):
                self.console.print(
                    f"flotilla: {pool.name} {decision.action} {decision.reason}",
                    markup=False,
                    soft_wrap=True,
                )
                pool.scale_to(decision.desired)
        self.write_status()

    def write_status(self) -> None:
        body = {"updated_at": time.time(), "pools": [p.status() for p in self.pools]}
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        temporary.replace(self.status_path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick(time.monotonic())
            except Exception:  # the platform keeps running; the next tick tries again
                logger.exception("autoscaler tick failed")
