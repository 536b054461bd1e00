"""The operator's Kubernetes runtime: kopf handlers, the API client, metrics.

Kept apart from :mod:`flotilla.operator` (policy, depth readers, decision attributes), so
``flotilla up`` runs the same policy without importing kopf (an import-linter contract).
"""

from ._handlers import GROUP, PLURAL, VERSION, evaluate, register
from ._kube import KubeApi, KubeError
from ._metrics import OperatorMetrics

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "KubeApi",
    "KubeError",
    "OperatorMetrics",
    "evaluate",
    "register",
]
