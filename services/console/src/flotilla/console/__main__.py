"""``python -m flotilla.console api``.

The console does not trace itself: its spans would be exported to itself, and every export
would make another trace (a feedback loop that buries the platform's own traces).
"""

from __future__ import annotations

import os
import sys

from flotilla.core import configure_logging, serve

from ._settings import ConsoleSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["api"]:
        print("usage: python -m flotilla.console api", file=sys.stderr)
        return 2
    os.environ["OTEL_SDK_DISABLED"] = "true"
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    from .api.app import create_app

    serve(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
