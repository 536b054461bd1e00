"""``python -m flotilla.inventory api|migrate``."""

from __future__ import annotations

import sys

from flotilla.core import configure_logging, configure_telemetry, serve

from ._database import migrate
from ._settings import InventorySettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    settings = InventorySettings()
    configure_logging("inventory-api", settings.log_level)
    if command == "migrate":
        added = migrate(settings.database_url)
        print(f"inventory: schema at head, {added} demo products added")
        return 0
    if command == "api":
        configure_telemetry("inventory-api")
        from .api.app import create_app

        serve(create_app(settings), host=settings.host, port=settings.port)
        return 0
    print("usage: python -m flotilla.inventory api|migrate", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
