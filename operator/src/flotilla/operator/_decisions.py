"""A decision as span attributes: what the operator and the local autoscaler record, and what
the console reads back for its pool view (docs/contracts.md, "autoscaler decisions").

Pure, like the policy: both runtimes call it, so the console sees one shape from either.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._policy import Observation, ScaleDecision, ScalingSpec

#: The name of the span recorded for every decision (a root span of its own trace).
DECISION_SPAN = "autoscale decision"

AttributeValue = str | int | float | Sequence[str]


def decision_attributes(
    *,
    autoscaler: str,
    target: str,
    queues: Sequence[str],
    spec: ScalingSpec,
    observation: Observation,
    decision: ScaleDecision,
) -> dict[str, AttributeValue]:
    """The attributes of one decision's span.

    Args:
        autoscaler: the pool's name as people know it (``namespace/name`` in a cluster).
        target: what is scaled (the Deployment, or the local worker command).
        queues: the queues whose depth was read.
        spec: the bounds the policy applied.
        observation: what was seen (depth is absent when the broker could not be read).
        decision: what the policy answered.
    """
    attributes: dict[str, AttributeValue] = {
        "flotilla.autoscaler": autoscaler,
        "flotilla.target": target,
        "flotilla.queues": list(queues),
        "flotilla.action": decision.action,
        "flotilla.reason": decision.reason,
        "flotilla.replicas.current": observation.current_replicas,
        "flotilla.replicas.desired": decision.desired,
        "flotilla.replicas.min": spec.min_replicas,
        "flotilla.replicas.max": spec.max_replicas,
        "flotilla.depth": observation.depth.total if observation.depth else -1,
    }
    if observation.depth is not None:
        attributes["flotilla.depth.ready"] = observation.depth.ready
        attributes["flotilla.depth.delayed_due"] = observation.depth.delayed_due
        attributes["flotilla.depth.in_flight"] = observation.depth.in_flight
    return attributes
