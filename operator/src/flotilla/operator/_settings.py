"""The operator's own settings (``FLOTILLA_OPERATOR_*``), like every other component's.

Where the API server is comes first from the standard places (the service account, a
kubeconfig: ``_credentials.py``); these fields are only the explicit override and what the
pod says of itself. Not to be confused with ``kopf.OperatorSettings``, kopf's tuning.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from flotilla.core import ComponentSettings, component_config


class OperatorSettings(ComponentSettings):
    """The operator's settings (``FLOTILLA_OPERATOR_*``).

    Attributes:
        api_url: an API server to use instead of the service account or kubeconfig.
        api_token: a bearer token for it, as it is.
        api_token_file: a file holding the token, read again as it rotates.
        api_ca_file: the CA that signed its certificate (``https``).
        pod_name: this replica's pod (the chart sets it from the downward API), which it
            labels with its peering role; unset outside a pod.
        pod_namespace: that pod's namespace (else the service account's).
    """

    model_config = component_config("OPERATOR")

    api_url: str | None = None
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    api_ca_file: Path | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorSettings:
        """The settings from ``env`` alone (not the process environment)."""
        prefix = "FLOTILLA_OPERATOR_"
        given = {
            name: env[prefix + name.upper()]
            for name in cls.model_fields
            if env.get(prefix + name.upper())
        }
        return cls.model_validate(given)
