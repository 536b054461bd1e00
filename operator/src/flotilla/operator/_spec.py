"""Reading a WorkerAutoscaler's spec into the policy's terms, refusing nonsense clearly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._policy import ScalingSpec


class InvalidSpec(ValueError):
    """The WorkerAutoscaler's spec cannot be acted on; the message says which field."""


@dataclass(frozen=True)
class AutoscalerSpec:
    target: str
    queues: tuple[str, ...]
    scaling: ScalingSpec
    poll_interval_s: float
    broker_url: str | None
    management_url: str | None  # RabbitMQ's management API, when not on the broker's host
    broker_secret: tuple[str, str] | None  # (secret name, key)


def parse_spec(spec: dict[str, Any]) -> AutoscalerSpec:
    """Raises InvalidSpec naming the field at fault."""
    try:
        target = spec["scaleTargetRef"]["name"]
        queues = tuple(spec["queues"])
        broker = spec["broker"]
    except (KeyError, TypeError) as exc:
        raise InvalidSpec(
            f"spec.{exc.args[0] if exc.args else 'scaleTargetRef'} is required"
        ) from exc
    if not queues:
        raise InvalidSpec("spec.queues needs at least one queue")
    secret = broker.get("urlFrom", {}).get("secretKeyRef")
    if not broker.get("url") and not secret:
        raise InvalidSpec("spec.broker needs url or urlFrom.secretKeyRef")
    scale_up, scale_down = spec.get("scaleUp", {}), spec.get("scaleDown", {})
    fallback = spec.get("fallback", {})
    try:
        scaling = ScalingSpec(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec.get("maxReplicas", 10)),
            target_per_replica=int(spec.get("targetPerReplica", 100)),
            activation_depth=int(spec.get("activationDepth", 1)),
            scale_up_max_step=int(scale_up.get("maxStep", 4)),
            scale_up_period_s=float(scale_up.get("periodSeconds", 2)),
            scale_down_max_step=int(scale_down.get("maxStep", 100)),
            scale_down_period_s=float(scale_down.get("periodSeconds", 15)),
            scale_down_window_s=float(scale_down.get("stabilizationWindowSeconds", 60)),
            fallback_replicas=int(fallback.get("replicas", spec.get("minReplicas", 1))),
            fallback_failure_threshold=int(fallback.get("failureThreshold", 3)),
            fallback_behavior=fallback.get("behavior", "currentReplicasIfHigher"),
        )
    except ValueError as exc:
        raise InvalidSpec(f"spec: {exc}") from exc
    interval = float(spec.get("pollIntervalSeconds", 2))
    if interval <= 0:
        raise InvalidSpec("spec.pollIntervalSeconds must be positive")
    return AutoscalerSpec(
        target=str(target),
        queues=tuple(str(q) for q in queues),
        scaling=scaling,
        poll_interval_s=interval,
        broker_url=broker.get("url"),
        management_url=broker.get("managementUrl"),
        broker_secret=(secret["name"], secret["key"]) if secret else None,
    )
