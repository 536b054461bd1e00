"""flotilla.operator: scales Dramatiq worker pools on queue depth.

The policy is pure (:func:`decide`); the depth readers read what Dramatiq really holds.
"""

from ._decisions import DECISION_SPAN, decision_attributes
from ._depth import (
    DepthReading,
    DepthUnavailable,
    RabbitmqDepthReader,
    RedisDepthReader,
    depth_reader,
)
from ._handlers import GROUP, PLURAL, VERSION, evaluate, register
from ._kube import KubeApi, KubeError
from ._metrics import OperatorMetrics
from ._policy import History, Observation, QueueDepth, ScaleDecision, ScalingSpec, decide, demand
from ._spec import AutoscalerSpec, InvalidSpec, parse_spec

__all__ = [
    "DECISION_SPAN",
    "GROUP",
    "PLURAL",
    "VERSION",
    "AutoscalerSpec",
    "DepthReading",
    "DepthUnavailable",
    "History",
    "InvalidSpec",
    "KubeApi",
    "KubeError",
    "Observation",
    "OperatorMetrics",
    "QueueDepth",
    "RabbitmqDepthReader",
    "RedisDepthReader",
    "ScaleDecision",
    "ScalingSpec",
    "decide",
    "decision_attributes",
    "demand",
    "depth_reader",
    "evaluate",
    "parse_spec",
    "register",
]
