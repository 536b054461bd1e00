"""``python -m flotilla.inventory api|migrate``."""

from __future__ import annotations

import argparse
import sys

from flotilla.core import configure_logging, configure_telemetry, migrate_command, serve

from ._database import migrate
from ._settings import InventorySettings
from .api.app import create_app

SERVICE_NAME = "inventory-api"


def main(argv: list[str] | None = None) -> int:
    """Run inventory-api (``api``) or migrate and seed its database (``migrate``).

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m flotilla.inventory")
    parser.add_argument(
        "command",
        choices=["api", "migrate"],
        help="api: serve HTTP; migrate: upgrade the schema and seed the demo catalogue",
    )
    command = parser.parse_args(argv).command
    settings = InventorySettings()
    configure_logging(SERVICE_NAME, settings.log_level)
    if command == "migrate":
        return migrate_command(
            "inventory",
            lambda: (
                f"inventory: schema at head, {migrate(settings.database_url)} demo products added"
            ),
        )
    configure_telemetry(
        SERVICE_NAME, metrics_port=settings.metrics_port, metrics_host=settings.metrics_host
    )
    serve(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
