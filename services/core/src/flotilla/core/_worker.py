"""Running a Dramatiq worker in-process with a graceful drain on SIGTERM.

The platform does not use ``dramatiq``'s CLI (which forks): one process = one worker, so the
supervisor and Kubernetes each see the process they started, telemetry is set up once, and
SIGTERM means: stop consuming, finish what is being processed, requeue what was prefetched,
flush spans, exit.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable

import dramatiq
from dramatiq import Worker

from ._telemetry import flush_telemetry

logger = logging.getLogger(__name__)


def run_worker(
    broker: dramatiq.Broker,
    *,
    queues: Iterable[str] | None = None,
    threads: int = 8,
    drain_timeout_s: float = 30.0,
    stop: threading.Event | None = None,
) -> None:
    """Consume ``queues`` until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    Args:
        broker: the broker whose actors this process runs.
        queues: the queues to consume; all declared ones when ``None``.
        threads: worker threads.
        drain_timeout_s: how long to wait for running messages on shutdown.
        stop: an event to stop on instead of a signal (tests).
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    worker = Worker(broker, queues=set(queues) if queues else None, worker_threads=threads)
    worker.start()
    logger.info("worker started", extra={"queues": sorted(queues or broker.get_declared_queues())})
    stop.wait()
    logger.info("worker draining", extra={"timeout_s": drain_timeout_s})
    worker.stop(timeout=int(drain_timeout_s * 1000))
    broker.close()
    flush_telemetry()
    logger.info("worker stopped")
