"""Running a Dramatiq worker in-process with a graceful drain on SIGTERM.

The platform does not use ``dramatiq``'s CLI (which forks): one process = one worker, so the
supervisor and Kubernetes each see the process they started, telemetry is set up once, and
SIGTERM means: stop consuming, finish what is being processed, requeue what was prefetched,
flush spans, exit.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq import Worker

from ._telemetry import flush_telemetry

logger = logging.getLogger(__name__)

#: Dramatiq's own default time limit (TimeLimit middleware) for an actor that sets none.
DEFAULT_TIME_LIMIT_MS = 600_000
#: What the drain allows beyond the longest time limit: the limit fires, the message is
#: failed or retried (acked or requeued), spans are flushed.
DRAIN_MARGIN_S = 5.0


#: The file a worker touches while its threads live; ``python -m flotilla.core.alive`` reads it
#: (the liveness probe of a worker pod, which has no HTTP port).
HEARTBEAT_FILE = Path(tempfile.gettempdir()) / "flotilla-worker-heartbeat"
HEARTBEAT_EVERY_S = 5.0
#: How often a worker on Redis compares what Redis says it holds with what it holds (a message
#: a lost fetch reply left behind is requeued after two sweeps, 10-20 s) and requeues what
#: workers whose heartbeat stopped held (within this of the heartbeat timeout).
ORPHAN_SWEEP_EVERY_S = 10.0


def _heartbeat(worker: Worker, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_EVERY_S):
        threads = [*worker.consumers.values(), *worker.workers]
        if threads and all(thread.is_alive() for thread in threads):
            HEARTBEAT_FILE.touch()
        else:
            logger.error("a worker thread died; no heartbeat (the liveness probe restarts it)")


def _sweep_orphans(broker: dramatiq.Broker, every_s: float, stop: threading.Event) -> None:
    if not hasattr(broker, "requeue_orphans"):  # Redis brokers only
        return
    platform: Any = broker
    while not stop.wait(every_s):
        try:
            platform.requeue_orphans()
            platform.requeue_dead_workers()
        except Exception as exc:  # redis errors and OSError: the next sweep asks again
            logger.info("could not compare the held messages with Redis: %s", exc)


def drain_timeout_for(broker: dramatiq.Broker, queues: Iterable[str] | None = None) -> float:
    """Seconds a worker on ``queues`` may need to finish what it holds: the longest actor
    ``time_limit`` there, plus a margin. Kubernetes' ``terminationGracePeriodSeconds`` must
    exceed it, or SIGKILL cuts a running job short (docs/operator.md)."""
    wanted = set(queues) if queues is not None else None
    actors = [broker.get_actor(name) for name in broker.get_declared_actors()]
    limits = [
        actor.options.get("time_limit", DEFAULT_TIME_LIMIT_MS)
        for actor in actors
        if wanted is None or actor.queue_name in wanted
    ]
    return max(limits, default=0) / 1000 + DRAIN_MARGIN_S


def run_worker(
    broker: dramatiq.Broker,
    *,
    queues: Iterable[str] | None = None,
    threads: int = 8,
    drain_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    orphan_sweep_s: float = ORPHAN_SWEEP_EVERY_S,
) -> None:
    """Consume ``queues`` until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    Args:
        broker: the broker whose actors this process runs.
        queues: the queues to consume; all declared ones when ``None``.
        threads: worker threads.
        drain_timeout_s: how long to wait for running messages on shutdown; by default
            :func:`drain_timeout_for` the queues (the longest actor time limit + 5 s).
        stop: an event to stop on instead of a signal (tests).
        orphan_sweep_s: how often a worker on Redis requeues the messages Redis lists as its
            own that none of its threads holds (see ``requeue_orphans``) and those of workers
            whose heartbeat stopped (``requeue_dead_workers``).
    """
    queues = list(queues) if queues is not None else None
    if queues is not None and (idle := set(queues) - broker.get_declared_queues()):
        raise ValueError(f"no actor is declared on {sorted(idle)}: nothing there would be consumed")
    stop = stop or threading.Event()
    if drain_timeout_s is None:
        drain_timeout_s = drain_timeout_for(broker, queues)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    worker = Worker(broker, queues=set(queues) if queues else None, worker_threads=threads)
    worker.start()
    beating = threading.Thread(
        target=_heartbeat, args=(worker, stop), name="heartbeat", daemon=True
    )
    beating.start()
    threading.Thread(
        target=_sweep_orphans, args=(broker, orphan_sweep_s, stop), name="orphans", daemon=True
    ).start()
    logger.info("worker started", extra={"queues": sorted(queues or broker.get_declared_queues())})
    stop.wait()
    logger.info("worker draining", extra={"timeout_s": drain_timeout_s})
    worker.stop(timeout=int(drain_timeout_s * 1000))
    broker.close()
    flush_telemetry()
    logger.info("worker stopped")
