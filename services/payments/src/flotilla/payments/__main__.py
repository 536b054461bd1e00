"""``python -m flotilla.payments api|migrate``."""

from __future__ import annotations

import argparse
import sys

from flotilla.core import configure_logging, configure_telemetry, migrate_command, serve

from ._database import migrate
from ._settings import PaymentsSettings

SERVICE_NAME = "payments-api"


def main(argv: list[str] | None = None) -> int:
    """Run the stand-in provider (``api``) or migrate its database (``migrate``)."""
    parser = argparse.ArgumentParser(prog="python -m flotilla.payments")
    parser.add_argument("command", choices=["api", "migrate"])
    command = parser.parse_args(argv).command
    settings = PaymentsSettings()
    configure_logging(SERVICE_NAME, settings.log_level)
    if command == "migrate":

        def upgrade() -> str:
            migrate(settings.database_url)
            return "payments: schema at head"

        return migrate_command("payments", upgrade)
    configure_telemetry(
        SERVICE_NAME, metrics_port=settings.metrics_port, metrics_host=settings.metrics_host
    )
    from .api.app import create_app

    serve(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
