"""``python -m flotilla.notifications worker``."""

from __future__ import annotations

import argparse
import sys

import dramatiq

from flotilla.contracts.catalogue import component
from flotilla.core import broker_from_url, configure_logging, configure_telemetry, run_worker

from ._settings import NotificationsSettings
from .actors import declare_actors

SERVICE_NAME = "notifications-worker"


def main(argv: list[str] | None = None) -> int:
    """Consume the ``notifications`` queue until SIGTERM, then drain.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m flotilla.notifications")
    parser.add_argument("command", choices=["worker"], help="consume the notifications queue")
    parser.parse_args(argv)
    settings = NotificationsSettings()
    configure_logging(SERVICE_NAME, settings.log_level)
    configure_telemetry(
        SERVICE_NAME, metrics_port=settings.metrics_port, metrics_host=settings.metrics_host
    )
    broker = broker_from_url(settings.broker_url)
    # NOTE: global too, so anything that asks Dramatiq for "the" broker finds this one.
    dramatiq.set_broker(broker)
    declare_actors(broker, settings)
    # NOTE: the queues the catalogue says it consumes (its pool is scaled on them)
    consumes = list(component("notifications-worker").consumes)
    run_worker(broker, queues=consumes, threads=settings.worker_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
