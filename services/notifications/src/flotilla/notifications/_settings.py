"""notifications-worker's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from flotilla.contracts import catalogue
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
    #: the Redis where each order's mail is claimed and marked sent (mailed once); by
    #: default the broker's, when the broker is Redis
    ledger_url: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=catalogue.port("mail-sink"), ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    mail_from: str = "orders@flotilla.local"
    worker_threads: int = Field(default=catalogue.concurrency("notifications-worker"), ge=1)
    max_retries: int = Field(default=20, ge=0)
    retry_min_backoff_ms: int = Field(default=500, ge=1)
    retry_max_backoff_ms: int = Field(default=60_000, ge=1)

    @model_validator(mode="after")
    def _a_ledger(self) -> NotificationsSettings:
        if self.ledger_url is None and not self.broker_url.startswith(("redis://", "rediss://")):
            raise ValueError(
                "FLOTILLA_NOTIFICATIONS_LEDGER_URL: a Redis URL is needed to mail each order "
                "once when the broker is not Redis"
            )
        return self

    @property
    def ledger(self) -> str:
        """The Redis of the mail ledger."""
        return self.ledger_url or self.broker_url
