from __future__ import annotations

from flotilla.core import ComponentSettings, component_config


class ConsoleSettings(ComponentSettings):
    """console's settings (``FLOTILLA_CONSOLE_*``)."""

    model_config = component_config("CONSOLE")

    host: str = "127.0.0.1"
    port: int = 8090
    database_path: str = "var/console.db"
    retention_max_spans: int = 200_000
    retention_max_age_s: int = 86_400
    max_request_bytes: int = 16 * 1024 * 1024
