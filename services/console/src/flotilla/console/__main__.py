"""``python -m flotilla.console api``.

The console does not trace itself, whatever ``OTEL_*`` variables it inherits: its spans would
be exported to itself, and every export would make another trace (a feedback loop that buries
the platform's own traces). So it never calls ``configure_telemetry`` and sets
``OTEL_SDK_DISABLED=true`` for its process, which also keeps ``service_app`` from instrumenting
its routes.
"""

from __future__ import annotations

import os
import sys

from flotilla.core import configure_logging, serve

from ._settings import ConsoleSettings


def main(argv: list[str] | None = None) -> int:
    """Run the console until SIGTERM; ``argv`` defaults to the command line.

    Returns:
        The process's exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["api"]:
        print("usage: python -m flotilla.console api", file=sys.stderr)
        return 2
    os.environ["OTEL_SDK_DISABLED"] = "true"  # before the app exists: see the module docstring
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    from .api.app import create_app

    serve(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
