"""The autoscaling policy: a pure function from (spec, observation, history, now) to a decision.

No kopf, no broker client, no clock: the operator and the local supervisor both call it, and
its properties are tested on their own (bounds, stabilization window, monotone in depth,
never below in-flight demand).

How it decides, in order:
1. paused: keep the current replica count;
2. broker unreadable: hold the current count until ``fallback_failure_threshold`` reads in a
   row have failed (one lost packet is not an outage), then go to ``fallback_replicas``
   (clamped to the bounds), and with ``fallback_behavior`` ``currentReplicasIfHigher`` (the
   default, as KEDA names it) never below the current count: a broker that cannot be read
   must not stop busy workers;
3. demand = ceil(depth / target_per_replica), depth = ready + delayed-due + in-flight; from zero
   replicas, nothing starts until depth reaches ``activation_depth``;
4. clamp to [min_replicas, max_replicas];
5. scaling up happens at once, adding at most ``scale_up_max_step`` replicas in any
   ``scale_up_period_s`` seconds (a period of 0 means: per decision);
6. scaling down follows the highest recommendation of the last ``scale_down_window_s``
   seconds (the stabilization window), removing at most ``scale_down_max_step`` replicas in
   any ``scale_down_period_s`` seconds.

The step policies count the changes this policy made (``History.changes``), as the HPA's
``behavior.scaleUp.policies`` do; a change made by hand is not held against the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

FallbackBehavior = Literal["static", "currentReplicasIfHigher"]


@dataclass(frozen=True)
class ScalingSpec:
    """What a WorkerAutoscaler asks for."""

    min_replicas: int = 1
    max_replicas: int = 8
    target_per_replica: int = 100
    activation_depth: int = 1
    scale_up_max_step: int = 4
    scale_up_period_s: float = 0.0
    scale_down_max_step: int = 100
    scale_down_period_s: float = 0.0
    scale_down_window_s: float = 60.0
    fallback_replicas: int = 1
    fallback_failure_threshold: int = 3
    fallback_behavior: FallbackBehavior = "currentReplicasIfHigher"

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target_per_replica < 1 or self.scale_up_max_step < 1:
            raise ValueError("target_per_replica and scale_up_max_step must be positive")
        if self.scale_down_max_step < 1 or self.scale_down_window_s < 0:
            raise ValueError("scale_down_max_step must be positive, the window not negative")
        if self.scale_up_period_s < 0 or self.scale_down_period_s < 0:
            raise ValueError("the step periods must not be negative")
        if self.fallback_failure_threshold < 1:
            raise ValueError("fallback_failure_threshold must be at least 1")
        if self.fallback_behavior not in ("static", "currentReplicasIfHigher"):
            raise ValueError("fallback_behavior is static or currentReplicasIfHigher")


@dataclass(frozen=True)
class QueueDepth:
    """What a worker pool's queues hold, the way Dramatiq holds it."""

    ready: int = 0
    delayed_due: int = 0
    in_flight: int = 0

    @property
    def total(self) -> int:
        return self.ready + self.delayed_due + self.in_flight


@dataclass(frozen=True)
class Observation:
    """One look at the world: the depth (``None`` when the broker could not be read)."""

    current_replicas: int
    depth: QueueDepth | None
    paused: bool = False
    broker_error: str | None = None


@dataclass(frozen=True)
class History:
    """Recent recommendations ``(time, replicas)`` and changes ``(time, delta)``, newest
    last; ``failures``: depth reads that failed in a row until now."""

    recommendations: tuple[tuple[float, int], ...] = ()
    changes: tuple[tuple[float, int], ...] = ()
    failures: int = 0


@dataclass(frozen=True)
class ScaleDecision:
    desired: int
    action: str  # "scale-up", "scale-down", "hold", "fallback", "paused"
    reason: str
    history: History = field(default_factory=History)


def _clamp(value: int, spec: ScalingSpec) -> int:
    return max(spec.min_replicas, min(spec.max_replicas, value))


def demand(spec: ScalingSpec, depth: QueueDepth, current: int) -> int:
    """Replicas the depth asks for, before bounds and rate limits."""
    if current == 0 and depth.total < spec.activation_depth:
        return 0
    return math.ceil(depth.total / spec.target_per_replica)


def decide(
    spec: ScalingSpec, observation: Observation, history: History, now: float
) -> ScaleDecision:
    """The replica count a pool should have now, with the reason in one line."""
    current = observation.current_replicas
    if observation.paused:
        return ScaleDecision(
            current, "paused", "paused by annotation; replicas left alone", history
        )
    if observation.depth is None:
        return _unreadable(spec, observation, history)

    depth = observation.depth
    history = replace(history, failures=0)
    recommended = _clamp(demand(spec, depth, current), spec)
    window_start = now - spec.scale_down_window_s
    kept = tuple((t, r) for t, r in history.recommendations if t > window_start)
    horizon = now - max(spec.scale_up_period_s, spec.scale_down_period_s)
    changes = tuple((t, d) for t, d in history.changes if t > horizon)
    added = sum(d for t, d in changes if d > 0 and t > now - spec.scale_up_period_s)
    removed = -sum(d for t, d in changes if d < 0 and t > now - spec.scale_down_period_s)
    stats = (
        f"depth {depth.total} (ready {depth.ready}, delayed {depth.delayed_due}, "
        f"in-flight {depth.in_flight}), target {spec.target_per_replica}/replica"
    )

    stabilized = max([r for _, r in kept] + [recommended])
    if recommended > current:
        desired = min(recommended, current + max(0, spec.scale_up_max_step - added))
    else:
        step = max(0, spec.scale_down_max_step - removed)
        desired = max(stabilized, current - step) if stabilized < current else current
    # NOTE: the bounds win over the rate limits: a pool below its minimum (or above its
    # maximum, after the spec changed) goes straight back inside.
    desired = _clamp(desired, spec)
    if desired != current:
        changes = (*changes, (now, desired - current))
    new_history = History((*kept, (now, recommended)), changes, failures=0)
    if desired > current:
        limited = " (step-limited)" if desired < recommended else ""
        return ScaleDecision(
            desired, "scale-up", f"{current}→{desired}{limited}: {stats}", new_history
        )
    if desired < current:
        return ScaleDecision(desired, "scale-down", f"{current}→{desired}: {stats}", new_history)
    if recommended > current:
        return ScaleDecision(
            current,
            "hold",
            f"{current}: scale-up step used ({added} added in the last "
            f"{spec.scale_up_period_s:g}s); {stats}",
            new_history,
        )
    if recommended < current and removed and stabilized < current:
        return ScaleDecision(
            current,
            "hold",
            f"{current}: scale-down step used ({removed} removed in the last "
            f"{spec.scale_down_period_s:g}s); {stats}",
            new_history,
        )
    if recommended < current:
        return ScaleDecision(
            current,
            "hold",
            f"{current}: waiting out the "
            f"{spec.scale_down_window_s:.0f}s window before scaling down; "
            f"{stats}",
            new_history,
        )
    return ScaleDecision(current, "hold", f"{current}: {stats}", new_history)


def _unreadable(spec: ScalingSpec, observation: Observation, history: History) -> ScaleDecision:
    """The broker could not be read: hold, then fall back once it failed often enough."""
    # NOTE: the bounds still win (a spec edited meanwhile), as everywhere in this policy
    current, failures = _clamp(observation.current_replicas, spec), history.failures + 1
    seen = replace(history, failures=failures)
    why = observation.broker_error or "broker unreadable"
    threshold = spec.fallback_failure_threshold
    if failures < threshold:
        return ScaleDecision(
            current,
            "hold",
            f"{current}: depth unreadable ({failures} of {threshold} failures before "
            f"fallback): {why}",
            seen,
        )
    target = _clamp(spec.fallback_replicas, spec)
    if spec.fallback_behavior == "currentReplicasIfHigher" and current > target:
        return ScaleDecision(
            current,
            "fallback",
            f"{why}; fallback keeps {current} (fallback {target} is lower: "
            "currentReplicasIfHigher)",
            seen,
        )
    return ScaleDecision(target, "fallback", f"{why}; fallback to {target}", seen)
