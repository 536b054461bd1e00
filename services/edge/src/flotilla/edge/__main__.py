"""``python -m flotilla.edge api`` (ASGI server from ``FLOTILLA_EDGE_SERVER``)."""

from __future__ import annotations

import sys

from ._settings import EdgeSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["api"]:
        print("usage: python -m flotilla.edge api", file=sys.stderr)
        return 2
    settings = EdgeSettings()
    if settings.server == "granian":
        from granian.constants import Interfaces
        from granian.server import Server

        Server(
            "flotilla.edge.app:app_from_environment",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=1,
            log_enabled=False,
        ).serve()
        return 0
    from flotilla.core import serve

    from .app import app_from_environment

    serve(app_from_environment(), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
