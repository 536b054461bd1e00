"""flotilla.operator: scales Dramatiq worker pools on queue depth.

The policy is pure (:func:`decide`); the depth readers read what Dramatiq really holds.
"""

from ._depth import (
    DepthReading,
    DepthUnavailable,
    RabbitmqDepthReader,
    RedisDepthReader,
    depth_reader,
)
from ._policy import History, Observation, QueueDepth, ScaleDecision, ScalingSpec, decide, demand

__all__ = [
    "DepthReading",
    "DepthUnavailable",
    "History",
    "Observation",
    "QueueDepth",
    "RabbitmqDepthReader",
    "RedisDepthReader",
    "ScaleDecision",
    "ScalingSpec",
    "decide",
    "demand",
    "depth_reader",
]
