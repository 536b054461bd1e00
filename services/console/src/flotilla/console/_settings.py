"""The console's settings (``FLOTILLA_CONSOLE_*``, docs/contracts.md)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr

from flotilla.contracts import catalogue
from flotilla.core import ComponentSettings, component_config


class ConsoleSettings(ComponentSettings):
    """console's settings (``FLOTILLA_CONSOLE_*``).

    Attributes:
        host: address to listen on.
        port: port to listen on (``OTEL_EXPORTER_OTLP_ENDPOINT`` of every other process).
        database_path: the SQLite file of the span store; its folder is created.
        retention_max_spans: how many spans are kept; the oldest traces go first.
        retention_max_age_s: how long (by start time) a trace, or a log record, is kept.
        retention_max_logs: how many log records are kept; the first received go first.
        max_request_bytes: the largest export accepted, compressed and decompressed.
        services: service name → base URL, whose ``/readyz`` the pages show (JSON object).
        jaeger_url: Jaeger's UI; when set, each trace links to ``{jaeger_url}/trace/{id}``.
        refresh_s: how often the pages update themselves.
        platform_status: the local supervisor's ``status.json`` (``flotilla up`` sets it): the
            health chips then show restarts and processes that are restarting.
        ingest_token: when set, ``POST /v1/traces`` and ``/v1/logs`` need
            ``Authorization: Bearer <token>`` (the chart sets one and gives it to the
            collector).
    """

    model_config = component_config("CONSOLE")
    secret_fields = ("ingest_token",)

    host: str = "127.0.0.1"
    port: int = Field(default=catalogue.port("console"), ge=1, le=65535)
    database_path: str = "var/console.db"
    retention_max_spans: int = Field(default=200_000, ge=1)
    retention_max_age_s: int = Field(default=86_400, ge=1)
    retention_max_logs: int = Field(default=200_000, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    services: dict[str, AnyHttpUrl] = Field(default_factory=dict)
    jaeger_url: AnyHttpUrl | None = None
    refresh_s: float = Field(default=2.0, gt=0, le=60)
    platform_status: str | None = None
    ingest_token: SecretStr = SecretStr("")
