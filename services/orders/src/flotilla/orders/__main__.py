"""``python -m flotilla.orders api|worker|migrate``."""

from __future__ import annotations

import sys

from flotilla.core import configure_logging, configure_telemetry, migrate_command, serve

from ._database import migrate
from ._settings import OrdersSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    settings = OrdersSettings()
    if command == "migrate":
        configure_logging("orders-migrate", settings.log_level)

        def upgrade() -> str:
            migrate(settings.database_url)
            return "orders: schema at head"

        return migrate_command("orders", upgrade)
    if command == "api":
        configure_logging("orders-api", settings.log_level)
        configure_telemetry(
            "orders-api", metrics_port=settings.metrics_port, metrics_host=settings.metrics_host
        )
        from .api.app import create_app

        serve(create_app(settings), host=settings.host, port=settings.port)
        return 0
    if command == "worker":
        configure_logging("orders-worker", settings.log_level)
        configure_telemetry(
            "orders-worker", metrics_port=settings.metrics_port, metrics_host=settings.metrics_host
        )
        from ._worker import run

        run(settings)
        return 0
    print("usage: python -m flotilla.orders api|worker|migrate", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
