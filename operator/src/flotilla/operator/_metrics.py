"""Prometheus metrics of the operator (a registry per instance, so tests can run several).

Labelled by ``namespace`` and ``autoscaler`` (the WorkerAutoscaler's name); the series of an
autoscaler go away when it is deleted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ._policy import QueueDepth, ScaleDecision

LABELS = ("namespace", "autoscaler")


class OperatorMetrics:
    """Depth, replicas and decisions per autoscaler."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._actions: dict[tuple[str, str], set[str]] = {}
        self.active = Gauge(
            "flotilla_operator_active",
            "1 on the replica that acts, 0 on a standby (kopf peering): the autoscaler "
            "series come from the active one",
            registry=self.registry,
        )
        self.depth = Gauge(
            "flotilla_autoscaler_queue_depth",
            "Messages the queues hold, by state (ready, delayed_due, in_flight)",
            [*LABELS, "state"],
            registry=self.registry,
        )
        self.current = Gauge(
            "flotilla_autoscaler_current_replicas",
            "Replicas of the target when the policy last ran",
            LABELS,
            registry=self.registry,
        )
        self.desired = Gauge(
            "flotilla_autoscaler_desired_replicas",
            "Replicas the policy last asked for",
            LABELS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "flotilla_autoscaler_decisions",
            "Policy decisions, by action (scale-up, scale-down, hold, fallback, paused)",
            [*LABELS, "action"],
            registry=self.registry,
        )
        self.broker_errors = Counter(
            "flotilla_autoscaler_broker_errors",
            "Depth reads that failed",
            LABELS,
            registry=self.registry,
        )
        self.read_seconds = Histogram(
            "flotilla_autoscaler_depth_read_seconds",
            "Time to read the queue depth from the broker",
            LABELS,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def record(
        self,
        namespace: str,
        name: str,
        current: int,
        depth: QueueDepth | None,
        decision: ScaleDecision,
    ) -> None:
        """One round of the policy."""
        labels = (namespace, name)
        self.current.labels(*labels).set(current)
        self.desired.labels(*labels).set(decision.desired)
        self.decisions.labels(*labels, decision.action).inc()
        self._actions.setdefault(labels, set()).add(decision.action)
        if depth is None:
            self.broker_errors.labels(*labels).inc()
            return
        for state, value in (
            ("ready", depth.ready),
            ("delayed_due", depth.delayed_due),
            ("in_flight", depth.in_flight),
        ):
            self.depth.labels(*labels, state).set(value)

    def forget(self, namespace: str, name: str) -> None:
        """Drop an autoscaler's series (it was deleted, or this replica stopped serving it)."""
        labels = (namespace, name)
        for action in self._actions.pop(labels, set()):
            self.decisions.remove(*labels, action)
        for state in ("ready", "delayed_due", "in_flight"):
            self.depth.remove(*labels, state)  # a no-op for labels never recorded
        for metric in (self.current, self.desired, self.broker_errors, self.read_seconds):
            metric.remove(*labels)
