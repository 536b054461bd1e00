"""The operator's Kubernetes runtime: kopf handlers, the API client and its login, metrics.

Kept apart from :mod:`flotilla.operator` (policy, depth readers, decision attributes), so
``flotilla up`` runs the same policy without importing kopf (an import-linter contract).
"""

from ._credentials import ApiServer, Credentials, LoginError, find_api_server
from ._handlers import GROUP, PLURAL, VERSION, evaluate, register
from ._kube import KubeApi, KubeError
from ._metrics import OperatorMetrics
from ._role import ROLE_LABEL, PeeringRole, acts
from ._session import kopf_session, register_login, wait_for_login
from ._settings import OperatorSettings

__all__ = [
    "GROUP",
    "PLURAL",
    "ROLE_LABEL",
    "VERSION",
    "ApiServer",
    "Credentials",
    "KubeApi",
    "KubeError",
    "LoginError",
    "OperatorMetrics",
    "OperatorSettings",
    "PeeringRole",
    "acts",
    "evaluate",
    "find_api_server",
    "kopf_session",
    "register",
    "register_login",
    "wait_for_login",
]
