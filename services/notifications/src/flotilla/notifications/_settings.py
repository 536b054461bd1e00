"""notifications-worker's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from flotilla.core import ComponentSettings, component_config


class NotificationsSettings(ComponentSettings):
    """notifications-worker's settings (``FLOTILLA_NOTIFICATIONS_*``).

    A mail that cannot be handed to the SMTP server is retried with exponential backoff from
    ``retry_min_backoff_ms`` up to ``retry_max_backoff_ms`` between attempts, ``max_retries``
    times (the defaults cover an SMTP outage of about a quarter of an hour), then it goes to
    the broker's dead-letter queue.
    """

    model_config = component_config("NOTIFICATIONS")

    broker_url: str = "redis://127.0.0.1:6379/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    mail_from: str = "orders@flotilla.local"
    worker_threads: int = Field(default=4, ge=1)
    max_retries: int = Field(default=20, ge=0)
    retry_min_backoff_ms: int = Field(default=500, ge=1)
    retry_max_backoff_ms: int = Field(default=60_000, ge=1)
