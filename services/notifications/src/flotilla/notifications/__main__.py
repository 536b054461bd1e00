"""``python -m flotilla.notifications worker``."""

from __future__ import annotations

import sys

from flotilla.core import broker_from_url, configure_logging, configure_telemetry, run_worker

from ._settings import NotificationsSettings
from .actors import declare_actors


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["worker"]:
        print("usage: python -m flotilla.notifications worker", file=sys.stderr)
        return 2
    settings = NotificationsSettings()
    configure_logging("notifications-worker", settings.log_level)
    configure_telemetry("notifications-worker")
    broker = broker_from_url(settings.broker_url)
    declare_actors(broker, settings)
    run_worker(broker, queues=["notifications"], threads=settings.worker_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
