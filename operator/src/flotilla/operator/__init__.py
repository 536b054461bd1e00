"""flotilla.operator: scales Dramatiq worker pools on queue depth.

The policy is pure (:func:`decide`); the depth readers read what Dramatiq really holds. The
kopf runtime lives in :mod:`flotilla.operator.kube`, so importing this package does not
import kopf (``flotilla up`` uses the policy and readers only).
"""

from ._decisions import DECISION_SPAN, decision_attributes
from ._depth import (
    DepthReading,
    DepthUnavailable,
    RabbitmqDepthReader,
    RedisDepthReader,
    depth_reader,
)
from ._policy import History, Observation, QueueDepth, ScaleDecision, ScalingSpec, decide, demand
from ._spec import AutoscalerSpec, InvalidSpec, parse_spec

__all__ = [
    "DECISION_SPAN",
    "AutoscalerSpec",
    "DepthReading",
    "DepthUnavailable",
    "History",
    "InvalidSpec",
    "Observation",
    "QueueDepth",
    "RabbitmqDepthReader",
    "RedisDepthReader",
    "ScaleDecision",
    "ScalingSpec",
    "decide",
    "decision_attributes",
    "demand",
    "depth_reader",
    "parse_spec",
]
