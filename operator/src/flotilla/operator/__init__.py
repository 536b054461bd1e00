"""flotilla.operator: scales Dramatiq worker pools on queue depth.

The policy is pure (:func:`decide`); depth readers read what Dramatiq really holds.
"""

from ._policy import History, Observation, QueueDepth, ScaleDecision, ScalingSpec, decide, demand

__all__ = [
    "History",
    "Observation",
    "QueueDepth",
    "ScaleDecision",
    "ScalingSpec",
    "decide",
    "demand",
]
