"""Settings base shared by every component.

Each component declares one subclass with its own env prefix (``FLOTILLA_<COMPONENT>_``).
The standard ``OTEL_*`` variables are not fields here: the OpenTelemetry SDK reads them as the
specification defines, and :mod:`flotilla.core._telemetry` only fills in defaults.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that ship as local defaults and must never reach a production deployment.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "local-dev-secret",
        "local-dev-secret-not-for-production-use",
        "secret",
    }
)


class ComponentSettings(BaseSettings):
    """Base of every component's settings class.

    Subclasses set ``model_config = component_config("ORDERS")`` and list in
    ``secret_fields`` the fields that hold secrets: outside ``environment=local`` a
    placeholder value there is refused at start-up instead of silently running insecurely.
    """

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_", extra="ignore", frozen=True)

    secret_fields: ClassVar[tuple[str, ...]] = ()

    environment: Literal["local", "production"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: where the process serves its metrics for a scrape (``/metrics``); None: no listener
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ComponentSettings:
        if self.environment == "local":
            return self
        for name in self.secret_fields:
            value: Any = getattr(self, name)
            text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            if text is None or str(text).strip().lower() in PLACEHOLDER_SECRETS:
                prefix = self.model_config.get("env_prefix", "")
                raise ValueError(
                    f"{prefix}{name.upper()} holds a placeholder; set a real secret "
                    f"(or FLOTILLA_*_ENVIRONMENT=local for a laptop)"
                )
        return self


def component_config(component: str, **extra: Any) -> SettingsConfigDict:
    """Build the ``model_config`` of a component's settings class.

    Args:
        component: the component's name, e.g. ``"ORDERS"``; the env prefix becomes
            ``FLOTILLA_ORDERS_``.
        **extra: further pydantic-settings options.
    """
    config: SettingsConfigDict = SettingsConfigDict(
        env_prefix=f"FLOTILLA_{component.upper().replace('-', '_')}_",
        extra="ignore",
        frozen=True,
        **extra,  # type: ignore[typeddict-item]
    )
    return config
