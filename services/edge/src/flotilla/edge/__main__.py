"""``python -m flotilla.edge api``."""

from __future__ import annotations

import sys

from flotilla.core import configure_logging, configure_telemetry, serve

from ._settings import EdgeSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["api"]:
        print("usage: python -m flotilla.edge api", file=sys.stderr)
        return 2
    settings = EdgeSettings()
    configure_logging("edge", settings.log_level)
    configure_telemetry("edge")
    from .app import create_app

    serve(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
