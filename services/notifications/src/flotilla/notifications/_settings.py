from __future__ import annotations

from pydantic import SecretStr

from flotilla.core import ComponentSettings, component_config


class NotificationsSettings(ComponentSettings):
    """notifications-worker's settings (``FLOTILLA_NOTIFICATIONS_*``)."""

    model_config = component_config("NOTIFICATIONS")

    broker_url: str = "redis://127.0.0.1:6379/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    mail_from: str = "orders@flotilla.local"
    worker_threads: int = 4
    max_retries: int = 10
